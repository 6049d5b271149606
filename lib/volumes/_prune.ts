// The command line of a pass of the volume's removal of empty directories (lib/volumes/prune.ts)
// run as the workers' account: `setpriv` to that account, then Deno with rights to the volume
// directory alone. Pure; golden-tested in tests/unit/prune_test.ts.

/** The command line of a pass run as `account` (lib/volumes/prunepass.ts under setpriv). */
export function passCommand(
  dir: string,
  options: { account: { uid: number; gid: number }; ageMs: number; deno: string; script: string },
): string[] {
  return [
    "setpriv",
    `--reuid=${options.account.uid}`,
    `--regid=${options.account.gid}`,
    "--clear-groups",
    "--",
    options.deno,
    "run",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    options.script,
    dir,
    String(options.ageMs),
  ];
}
