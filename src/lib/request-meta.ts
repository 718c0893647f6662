/**
 * Who made a request and from where: what services need of a request, as plain values, so they can
 * be called from routes, queue consumers and tests alike (services never take a Hono Context).
 */
export interface RequestMeta {
	requestId: string | null;
	ip: string | null;
	country: string | null;
	userAgent: string | null;
	/** The authenticated caller (a user id), or null for unauthenticated or system work. */
	actor: string | null;
}

