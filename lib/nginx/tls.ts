// TLS for both programs: the checks of a certificate and key given to nginx (`--tls-cert`,
// `--tls-key`), and the CA certificates the index verifies its volumes with (`--volume-ca`).
// nginx reads the files itself (its master, before it drops privileges); their paths go only in
// its config file, which is ours with mode 0600, never in process arguments.

import { resolve } from "node:path";
import { firstLine } from "../errors.ts";
import { FlagError, type FlagSpec } from "../flags.ts";
import { NginxError } from "./runtime.ts";

/** A server certificate (chain) and its private key, both PEM files. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** How the index reaches its volumes over TLS: the extra roots it trusts (PEM), if any. */
export interface VolumeTls {
  caCerts?: string[];
}

/** Protocols a TLS listener of ours accepts: the modern ones only. */
export const TLS_PROTOCOLS = "TLSv1.2 TLSv1.3";

/** The flags of both programs that turn HTTPS on. */
export const TLS_FLAGS: FlagSpec = {
  "tls-cert": {
    type: "string",
    default: "",
    help: "serve HTTPS with this PEM certificate (chain); needs --tls-key",
    arg: "FILE",
  },
  "tls-key": {
    type: "string",
    default: "",
    help: "the certificate's PEM private key (mode 0600 or 0400)",
    arg: "FILE",
  },
};

function describeError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  return firstLine(err);
}

async function readPem(file: string, what: string, marker: RegExp): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new NginxError(`cannot read ${what} ${file}: ${describeError(err)}`);
  }
  if (!marker.test(text)) throw new NginxError(`${what} ${file} is not PEM (${marker.source})`);
  return text;
}

/**
 * Fails with a one-line reason unless `cert` and `key` are readable PEM files and the key is
 * private to its owner (mode 0600 or 0400), with the chmod that fixes it.
 */
export async function checkTlsFiles(files: TlsFiles): Promise<void> {
  let mode: number;
  try {
    const info = await Deno.stat(files.key);
    if (!info.isFile) throw new NginxError(`TLS key ${files.key} is not a file`);
    mode = (info.mode ?? 0) & 0o777;
  } catch (err) {
    if (err instanceof NginxError) throw err;
    throw new NginxError(`cannot read TLS key ${files.key}: ${describeError(err)}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new NginxError(
      `TLS key ${files.key} is readable by others (mode 0${mode.toString(8)}); ` +
        `run: chmod 600 ${files.key}`,
    );
  }
  await readPem(files.key, "TLS key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  await readPem(files.cert, "TLS certificate", /-----BEGIN CERTIFICATE-----/);
}

/** Reads a PEM file of CA certificates (one or more) for `caCerts`; one-line NginxError if bad. */
export async function readCaCerts(file: string): Promise<string[]> {
  return [await readPem(file, "CA file", /-----BEGIN CERTIFICATE-----/)];
}

/** The TLS a Volumes client needs for the index's flags, or undefined for plain HTTP. */
export async function volumeTlsFor(
  options: { volumeTls?: boolean; volumeCa?: string },
): Promise<VolumeTls | undefined> {
  if (!options.volumeTls) return undefined;
  return options.volumeCa ? { caCerts: await readCaCerts(options.volumeCa) } : {};
}

/** `--tls-cert` and `--tls-key`, both or neither, made absolute (nginx would take them as its). */
export function parseTlsFlags(cert: string, key: string): TlsFiles | undefined {
  if (cert === "" && key === "") return undefined;
  if (cert === "") throw new FlagError("-tls-key needs -tls-cert");
  if (key === "") throw new FlagError("-tls-cert needs -tls-key");
  return { cert: resolve(cert), key: resolve(key) };
}
