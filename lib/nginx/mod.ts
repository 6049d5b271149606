// The interface of lib/nginx, for the programs (volume.ts, index.ts through nginx.ts) and their
// harnesses: the renderers of the volume's and the index's configs, the workers' account and the
// directories readied for it, the supervisor that runs nginx, TLS files, the runtime files, and
// the contract of strings the index shares with its nginx (contract.ts).

export { redactSecrets, SECRET_PARAMS } from "./accesslog.ts";
export {
  prepareAccessLog,
  prepareVolumeDir,
  shareSocketWithWorkers,
  type WorkerAccount,
  workerAccount,
} from "./account.ts";
export { type ConfigOptions, renderConfig } from "./conf.ts";
export * from "./contract.ts";
export { writeNewFile } from "./nofollow.ts";
export {
  checkPortFree,
  Nginx,
  type NginxOptions,
  portAnswers,
  stopChild,
  stopOnSignals,
} from "./process.ts";
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
  alive,
  DEFAULT_WORKER_USER,
  ensureRuntimeDir,
  exists,
  lockFileFor,
  NginxError,
  pidFileFor,
  runtimeDir,
  stopLeftover,
  tempListFor,
} from "./runtime.ts";
export {
  checkTlsFiles,
  parseTlsFlags,
  readCaCerts,
  TLS_FLAGS,
  type TlsFiles,
  type VolumeTls,
  volumeTlsFor,
} from "./tls.ts";
export {
  DEFAULT_KEEPALIVE_MS,
  renderVolumeHttpBlocks,
  renderVolumeLocations,
  type VolumeLocationOptions,
} from "./volumeconf.ts";
