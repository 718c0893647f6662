import { z } from "zod";

/**
 * How many times the outbox has handed this event to the queue (1 for the first relay). The
 * dead-letter consumer parks the event again with this count, and stops at the bound (see services/outbox.ts).
 */
const relays = z.number().int().positive().optional();

/** Internal events on the tenant-events queue: audit entries, outgoing webhook events, deliveries. */
const AuditMessageSchema = z.object({
	kind: z.literal("audit"),
	/** Producer-side id; the audit writer ignores a second copy. */
	id: z.string().min(1),
	organizationId: z.string().min(1),
	actorType: z.enum(["user", "system"]),
	actorId: z.string().nullable(),
	action: z.string().min(1).max(100),
	targetType: z.string().nullable(),
	targetId: z.string().nullable(),
	before: z.unknown().optional(),
	after: z.unknown().optional(),
	context: z
		.object({
			ip: z.string().nullable(),
			country: z.string().nullable(),
			userAgent: z.string().nullable(),
			requestId: z.string().nullable(),
		})
		.partial()
		.default({}),
	occurredAt: z.number().int(),
	relays,
});

const WebhookEventMessageSchema = z.object({
	kind: z.literal("webhook.event"),
	id: z.string().min(1),
	organizationId: z.string().min(1),
	type: z.string().min(1),
	data: z.unknown(),
	occurredAt: z.number().int(),
	relays,
});

const DeliverMessageSchema = z.object({
	kind: z.literal("webhook.deliver"),
	deliveryId: z.string().min(1),
	organizationId: z.string().min(1),
	relays,
});

export const TenantEventSchema = z.discriminatedUnion("kind", [
	AuditMessageSchema,
	WebhookEventMessageSchema,
	DeliverMessageSchema,
]);
export type AuditMessage = z.infer<typeof AuditMessageSchema>;
export type WebhookEventMessage = z.infer<typeof WebhookEventMessageSchema>;
export type DeliverMessage = z.infer<typeof DeliverMessageSchema>;
export type TenantEvent = z.infer<typeof TenantEventSchema>;
