/**
 * Resources (pools, servers, stores, clients) register a releaser when created; the
 * releasers run last-in-first-out, once, and the first error is kept and thrown.
 */
export class Releasers {
  private readonly stack: (() => Promise<void> | void)[] = [];
  private released: Promise<void> | null = null;

  add(release: () => Promise<void> | void): void {
    if (this.released) throw new Error('resources were already released');
    this.stack.push(release);
  }

  releaseAll(): Promise<void> {
    this.released ??= (async () => {
      let first: unknown;
      while (this.stack.length > 0) {
        const release = this.stack.pop()!;
        try {
          await release();
        } catch (error) {
          first ??= error;
        }
      }
      if (first !== undefined) throw first;
    })();
    return this.released;
  }
}
