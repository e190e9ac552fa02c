// --server and --token-file: naming two kinds at once, or a server's secret
// without a server, is a usage error (64), not a lock that cannot be taken
// (69, which a wrapper script retries). main() returns the exit code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { main } from "../lib/cli.ts";

for (const command of ["run", "status"]) {
  const tail = command === "run" ? ["--", "true"] : [];
  for (const kind of ["folder", "port", "socket"]) {
    test(`${command} --kind ${kind} --server HOST:PORT is a usage error (64)`, async () => {
      const code = await main([command, "x", "--kind", kind, "--server", "127.0.0.1:1", ...tail]);
      assert.equal(code, 64);
    });
  }
  test(`${command} --token-file without --server is a usage error (64)`, async () => {
    // Refused before the file is read: it need not exist.
    const code = await main([command, "x", "--token-file", "/nonexistent/token", ...tail]);
    assert.equal(code, 64);
  });
}
