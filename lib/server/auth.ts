/**
 * Shared-secret authentication between lock clients and the lock server: a
 * mutual HMAC-SHA256 challenge over Web Crypto. The secret never crosses the
 * wire; each side proves it knows it by signing both sides' fresh nonces.
 *
 * ```text
 * C: a1 HELLO <pid> <host>
 * S: a1 OK socketlock/1 <server-nonce>          ; "-" instead when no token is set
 * C: a2 AUTH <hex HMAC(secret, "socketlock-auth client " + server-nonce + " " + client-nonce)> <client-nonce>
 * S: a2 OK <hex HMAC(secret, "socketlock-auth server " + server-nonce + " " + client-nonce)>
 * ```
 *
 * The server's proof lets the client refuse an imposter that would hand out
 * fake grants. Nonces are 16 random bytes in hex.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Which side signs. */
export type AuthRole = "client" | "server";

/**
 * Imports a shared secret as an HMAC-SHA256 key.
 *
 * @example Sign and check a challenge
 * ```ts
 * import { importAuthKey, newNonce, signChallenge, verifyChallenge } from "./auth.ts";
 * const key = await importAuthKey("s3cret");
 * const server = newNonce();
 * const client = newNonce();
 * const mac = await signChallenge(key, "client", server, client);
 * console.log(await verifyChallenge(key, "client", server, client, mac)); // true
 * ```
 *
 * @param secret The shared secret (e.g. the content of `--token-file`).
 * @returns The key.
 */
export function importAuthKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** A fresh nonce: 16 random bytes as 32 hex digits. */
export function newNonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}

function message(
  role: AuthRole,
  serverNonce: string,
  clientNonce: string,
): Uint8Array<ArrayBuffer> {
  return encoder.encode(`socketlock-auth ${role} ${serverNonce} ${clientNonce}`);
}

/**
 * Signs the challenge as `role`.
 *
 * @returns The HMAC as 64 hex digits.
 */
export async function signChallenge(
  key: CryptoKey,
  role: AuthRole,
  serverNonce: string,
  clientNonce: string,
): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", key, message(role, serverNonce, clientNonce));
  return toHex(new Uint8Array(mac));
}

/**
 * Checks a proof signed as `role` (in constant time, by Web Crypto).
 *
 * @returns true if `mac` was made with the same secret.
 */
export function verifyChallenge(
  key: CryptoKey,
  role: AuthRole,
  serverNonce: string,
  clientNonce: string,
  mac: string,
): Promise<boolean> {
  const bytes = fromHex(mac);
  if (!bytes || bytes.length !== 32) return Promise.resolve(false);
  return crypto.subtle.verify("HMAC", key, bytes, message(role, serverNonce, clientNonce));
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}
