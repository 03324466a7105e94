// Type-checked inside the new project pack-check.mjs makes: both entry points' declarations,
// as a TypeScript user of the installed package sees them.
import { createHub, defaultConfig, type Hub, MemoryStore, type QueueStore } from "queuehub";
import { HubClient, type HubError, type Message } from "queuehub/client";

const store: QueueStore = new MemoryStore();
const hub: Promise<Hub> = createHub(defaultConfig({ port: 0 }), { store });
const client = new HubClient({ url: "http://127.0.0.1:3000", clientId: "typed" });
void client.subscribe("pickup", (_payload: unknown, message: Message) => message.messageId);
const failed: HubError | null = null;
void [hub, failed];
