import { createRouter } from "../../lib/create-app";
import * as routes from "./health.routes";

export const healthRouter = createRouter().openapi(routes.health, (c) => c.json({ status: "ok" as const }, 200));
