/** File identity and scope helpers shared by the scanner and the sweeper. */
import path from 'node:path';

/** Default quarantine directory, inside the scope root (the scan skips it). */
export const DEFAULT_QUARANTINE = '.reaper-quarantine';

export function quarantineDir(root: string, quarantine?: string): string {
  return quarantine ?? path.join(root, DEFAULT_QUARANTINE);
}

export function fileFingerprint(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** An id is a relative path without empty, `.` or `..` segments. */
export function safeRelative(id: string): boolean {
  if (id === '' || id.startsWith('/') || id.includes('\0')) return false;
  return id.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

