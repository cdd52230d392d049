/** `--listen HOST:PORT` for the daemon: `127.0.0.1:8476`, `[::1]:8476`, `:8476` (all interfaces), `8476`. */

export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_LISTEN: ListenAddress = { host: '127.0.0.1', port: 8476 };

export function parseListenAddress(text: string): ListenAddress | { error: string } {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
  } else if (/^\d+$/.test(trimmed)) {
    host = DEFAULT_LISTEN.host;
    portText = trimmed;
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon < 0 || trimmed.indexOf(':') !== colon) return { error: `"${text}" is not HOST:PORT (write an IPv6 address as [::1]:8476)` };
    host = trimmed.slice(0, colon) || '0.0.0.0';
    portText = trimmed.slice(colon + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || !Number.isInteger(port) || port > 65_535) return { error: `"${text}": the port must be a number from 0 to 65535` };
  return { host, port };
}

/** host:port as it appears in a URL (IPv6 in brackets). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
