// One id per isolate (main thread or worker): each loads its own copy of
// this module, so workers of one process tell their locks apart by it.

/** This isolate's id, recorded in lock info so inspect() can say which worker holds. */
export const ISOLATE_ID: string = crypto.randomUUID();
