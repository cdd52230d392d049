/**
 * The simulator's event queue: a binary heap ordered by time, then by insertion, so
 * events at the same instant run in the order they were scheduled (deterministic).
 * Kept as parallel arrays: millions of events pass through it in a bench run.
 */
export type Action = () => void;

export class EventQueue {
  private times: number[] = [];
  private seqs: number[] = [];
  private actions: Action[] = [];
  private seq = 0;

  get size(): number {
    return this.times.length;
  }

  push(time: number, action: Action): void {
    const times = this.times;
    const seqs = this.seqs;
    const actions = this.actions;
    const s = this.seq++;
    let i = times.length;
    times.push(time);
    seqs.push(s);
    actions.push(action);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < s)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      actions[i] = actions[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = s;
    actions[i] = action;
  }

  /** Time of the next event (Infinity when empty). */
  peekTime(): number {
    return this.times.length ? this.times[0]! : Infinity;
  }

  /** Remove the next event; returns its action (the caller reads the time first with peekTime). */
  pop(): Action {
    const times = this.times;
    const seqs = this.seqs;
    const actions = this.actions;
    const top = actions[0]!;
    const lastTime = times.pop()!;
    const lastSeq = seqs.pop()!;
    const lastAction = actions.pop()!;
    const n = times.length;
    if (n > 0) {
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && (times[r]! < times[l]! || (times[r] === times[l] && seqs[r]! < seqs[l]!))) c = r;
        if (times[c]! > lastTime || (times[c] === lastTime && seqs[c]! > lastSeq)) break;
        times[i] = times[c]!;
        seqs[i] = seqs[c]!;
        actions[i] = actions[c]!;
        i = c;
      }
      times[i] = lastTime;
      seqs[i] = lastSeq;
      actions[i] = lastAction;
    }
    return top;
  }
}
