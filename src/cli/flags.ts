/**
 * What commander hands a command: one property per option main.ts declares (camelCase,
 * `--no-auth` as `auth: false`), absent when not given and without a default. Each command
 * module declares its options as these pieces plus its own; main.ts passes the parsed
 * options through as that type, so no command casts or checks a value's type again.
 */

export interface ConfigFlags {
  /** -c FILE */
  config?: string;
}

export interface StateFlags {
  /** --state URL */
  state?: string;
}

export interface OutputFlags {
  /** -o table|json (commander checks the choice) */
  output?: 'table' | 'json';
}

/** What opens the manifest and its state store. */
export type ManifestFlags = ConfigFlags & StateFlags;

/** --resource NAME… (audit, reap: several; restore: one) and --exclude-resource NAME…. */
export interface ResourceFlags {
  resource?: string | string[];
  excludeResource?: string[];
}

/** The filters of audit and reap: --older-than D, --owner KEY (repeatable). */
export interface FilterFlags extends ResourceFlags {
  olderThan?: string;
  owner?: string[];
}

/** --shard i/N and --job ID (audit, reap; docs/scale-out.md). */
export interface ShardFlags {
  shard?: string;
  job?: string;
}

/** --quiet, --log-format text|json (audit, reap). */
export interface RunLogFlags {
  quiet?: boolean;
  logFormat?: string;
}

/** The report files a run can leave (audit; reap all but --junit). */
export interface ReportFileFlags {
  metricsFile?: string;
  pushgateway?: string;
  pushgatewayJob?: string;
  junit?: string;
  summary?: string;
}
