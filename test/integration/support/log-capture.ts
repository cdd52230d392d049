/** A log stream for the daemon's JSON lines, kept in memory for assertions. */
export interface LogEvent {
  time: string;
  level: string;
  event: string;
  [field: string]: unknown;
}

export class LogCapture {
  private readonly chunks: string[] = [];
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
  events(): LogEvent[] {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LogEvent);
  }
}
