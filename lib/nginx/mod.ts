// The interface of lib/nginx, for the programs (volume.ts, index.ts through nginx.ts) and their
// harnesses: the renderers of the volume's and the index's configs, the workers' account and the
// directories readied for it, the supervisor that runs nginx, TLS files, the runtime files, and
// the contract of strings the index shares with its nginx (contract.ts), and the disk figures a
// volume keeps beside its nginx (diskreport.ts).

// What the programs use.
export * from "./contract.ts";
export {
  DEFAULT_KEEPALIVE_MS,
  renderVolumeHttpBlocks,
  renderVolumeLocations,
  validIndexUrl,
  type VolumeLocationOptions,
} from "./volumeconf.ts";
export {
  type ProxyLimits,
  type ProxyLocationOptions,
  type ProxyOptions,
  renderLimitZones,
  renderProxyLocations,
  renderProxyUpstream,
  type ReplicaErrorLines,
} from "./proxyconf.ts";
export {
  prepareVolumeDir,
  shareSocketWithWorkers,
  type WorkerAccount,
  workerAccount,
} from "./account.ts";
export { Nginx, type NginxOptions, portAnswers, stopChild, stopOnSignals } from "./process.ts";
export { redactSecrets } from "./accesslog.ts";
export { DEFAULT_WORKER_USER, NginxError, pidFileFor, stopLeftover } from "./runtime.ts";
export { parseTlsFlags, TLS_FLAGS, type TlsFiles, type VolumeTls, volumeTlsFor } from "./tls.ts";
export { startDiskReport } from "./diskreport.ts";
export { writeNewFile } from "./nofollow.ts";

// The steps Nginx.start takes and the files it keeps, for the tests that check each on its own.
export { type ConfigOptions, renderConfig } from "./conf.ts";
export { SECRET_PARAMS } from "./accesslog.ts";
export { prepareAccessLog } from "./account.ts";
export { checkPortFree } from "./process.ts";
export { checkTlsFiles, readCaCerts } from "./tls.ts";
export {
  alive,
  ensureRuntimeDir,
  exists,
  lockFileFor,
  runtimeDir,
  tempListFor,
} from "./runtime.ts";
