import { startHub } from "./support/hub.js";
import { deliverySemantics } from "./support/semantics.js";

deliverySemantics("one hub, memory store", (overrides) => startHub(overrides));
