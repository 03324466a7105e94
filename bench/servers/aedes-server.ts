// Baseline server: Aedes, an MQTT broker in a Node process, with its default in-memory persistence
// (QoS 1 messages and offline sessions live in memory only). Prints {"msg":"listening","url":...}.

import net from "node:net";
import { Aedes } from "aedes";

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);

server.listen(0, "127.0.0.1", () => {
  const address = server.address() as net.AddressInfo;
  console.log(JSON.stringify({ msg: "listening", url: `mqtt://127.0.0.1:${address.port}` }));
});

process.on("SIGTERM", () => process.exit(0));
