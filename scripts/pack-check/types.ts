// Type-checked inside the new project pack-check.mjs makes: both entry points' declarations,
// as a TypeScript user of the installed package sees them.
import { type AttachedHub, attachHub, createHub, type Hub, MemoryStore, type QueueStore } from "queuehub";
import { HubClient, type HubError, type Message } from "queuehub/client";
import { Server } from "socket.io";

const queueStore: QueueStore = new MemoryStore();
const hub: Promise<Hub> = createHub({ port: 0, maxBatch: 50, queueStore });
const attached: Promise<AttachedHub> = attachHub(new Server(), { namespaces: ["/caps"], store: "memory" });
const client = new HubClient({ url: "http://127.0.0.1:3000", clientId: "typed" });
void client.subscribe("pickup", (_payload: unknown, message: Message) => message.messageId);
const failed: HubError | null = null;
void [hub, attached, failed];
