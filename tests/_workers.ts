// Workers for tests, the way each runtime's users make them: the web Worker
// in Deno and Bun, node:worker_threads in Node. Config goes in as the first
// message; every message the worker posts is collected as text.

/** A running test worker. */
export interface TestWorker {
  /** Resolves when the worker has posted `text`; rejects after `timeout` ms or on error. */
  waitFor(text: string, timeout?: number): Promise<void>;
  /** Terminates the worker (its isolate and everything it holds). */
  terminate(): Promise<void>;
  /** Messages posted so far. */
  readonly messages: string[];
  /** Errors the worker raised and did not catch. */
  readonly errors: string[];
}

type WebWorker = {
  onmessage: ((e: { data: unknown }) => void) | null;
  onerror: ((e: { message?: string; preventDefault(): void }) => void) | null;
  postMessage(data: unknown): void;
  terminate(): void;
};

/** Starts `script` as a worker and sends it `config`. */
export async function startWorker(script: URL, config: unknown): Promise<TestWorker> {
  const messages: string[] = [];
  const errors: string[] = [];
  const watchers = new Set<() => void>();
  const notify = () => watchers.forEach((watch) => watch());
  const onMessage = (data: unknown) => {
    messages.push(String(data));
    notify();
  };
  const onError = (message: string) => {
    errors.push(message);
    notify();
  };
  let terminate: () => Promise<void>;
  const WebWorkerClass = (globalThis as { Worker?: new (url: URL, o: object) => WebWorker }).Worker;
  if (WebWorkerClass) {
    const worker = new WebWorkerClass(script, { type: "module" });
    worker.onmessage = (e) => onMessage(e.data);
    worker.onerror = (e) => {
      e.preventDefault(); // an uncaught worker error must not take the test process down
      onError(e.message ?? "worker error");
    };
    worker.postMessage(config);
    terminate = () => Promise.resolve(worker.terminate());
  } else {
    const { Worker } = await import("node:worker_threads");
    const worker = new Worker(script);
    worker.on("message", onMessage);
    worker.on("error", (e) => onError(String(e)));
    worker.postMessage(config);
    terminate = async () => {
      await worker.terminate();
    };
  }
  return {
    messages,
    errors,
    terminate: () => terminate(),
    waitFor(text, timeout = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`worker did not post ${text}: ${messages} ${errors}`));
        }, timeout);
        function check() {
          if (messages.some((m) => m.startsWith(text))) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve();
          }
        }
        watchers.add(check);
        check();
      });
    },
  };
}
