// The pure parts of account.ts, apart so that golden tests reach them while account.ts exports
// only what the programs use: the workers' account as the system lists it, the refusal that names
// the command making it, and what a volume directory must be for root to run it with them.

/** The command that makes the workers' account, in a refusal's message. */
const CREATE_ACCOUNT = "useradd --system --no-create-home --shell /usr/sbin/nologin";
/** A volume's directory when root runs it: root's, writable by the workers' group, sticky. */
export const VOLUME_DIR_MODE = 0o1770;

/** The account of nginx's workers, as the system knows it (account.ts, workerAccount). */
export interface WorkerAccount {
  name: string;
  uid: number;
  gid: number;
  /** The name of its primary group, for nginx's `user` directive. */
  group: string;
}

/** The refusal when the workers' account is missing, with the command that makes it. Pure. */
export function missingAccountMessage(name: string): string {
  return `user ${name} (for nginx's workers) does not exist; run: ${CREATE_ACCOUNT} ${name}`;
}

/** Parses a line of `getent passwd` and the group name of `getent group`. Pure. */
export function parseAccount(passwd: string, groupLine: string): WorkerAccount | null {
  const [name, , uid, gid] = passwd.trim().split(":");
  const group = groupLine.trim().split(":")[0];
  if (!name || !/^\d+$/.test(uid ?? "") || !/^\d+$/.test(gid ?? "") || !group) return null;
  return { name, uid: Number(uid), gid: Number(gid), group };
}

/**
 * What is wrong with an existing volume directory for root to run it with `account`'s workers:
 * it must be root's, of the workers' group, mode 1770 (the workers make and remove what is
 * theirs; the sticky bit keeps the volume's own root directory from being renamed away and
 * replaced by a link). null if it is right. Pure.
 */
export function volumeDirProblem(
  dir: string,
  info: { uid: number | null; gid: number | null; mode: number | null },
  account: WorkerAccount,
): string | null {
  const mode = (info.mode ?? 0) & 0o7777;
  if (info.uid === 0 && info.gid === account.gid && mode === VOLUME_DIR_MODE) return null;
  const { name } = account;
  return `volume directory ${dir} is not root's with group ${name} and mode 1770, so ` +
    `${name}'s nginx workers could not store there or could plant links for root to follow; ` +
    `run: chown -R ${name}:${name} ${dir} && chmod -R go= ${dir} && ` +
    `chown root:${name} ${dir} && chmod 1770 ${dir}`;
}
