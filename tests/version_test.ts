import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { VERSION } from "../lib/version.ts";

test("VERSION is the version jsr.json and deno.json publish", () => {
  for (const file of ["../jsr.json", "../deno.json"]) {
    const config = JSON.parse(readFileSync(new URL(file, import.meta.url), "utf8"));
    assert.equal(VERSION, config.version, file);
  }
});
