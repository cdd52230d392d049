#!/usr/bin/env node
// The last lines of .ci/run: "N passed, N failed" over every test run, the release artifact
// and the temporary-directory check, naming what failed where a truncated log still shows it.
// Usage: node scripts/ci-summary.mjs ARTIFACT_STATUS NODE_BIN|REPORT_JSON|LOG|EXIT_STATUS ...
// Environment: RESTORED (ok when better-sqlite3 was put back), LEFTOVERS (a count).
// Exits 1 when anything failed, so .ci/run cannot pass on a summary that says otherwise.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Terminal colour codes in the log. */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
let passed = 0, failedTests = 0, skipped = 0;
const [artifact, ...runs] = process.argv.slice(2);
for (const entry of runs) {
  const [bin, file, log, status] = entry.split("|");
  let r;
  try { r = JSON.parse(readFileSync(file, "utf8")); } catch { console.log(`${bin}: no test report (npm test exited ${status})`); failedTests++; continue; }
  const version = execFileSync(`${bin}/node`, ["--version"], { encoding: "utf8" }).trim();
  // A file that fails before its tests run (a thrown setup) has no failed test of its own: count it.
  const brokenFiles = r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((t) => t.status === "failed")).length;
  console.log(`Node.js ${version}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped` + (brokenFiles ? `, ${brokenFiles} test files failed to run` : ""));
  passed += r.numPassedTests; failedTests += r.numFailedTests + brokenFiles; skipped += r.numPendingTests;
  // Name what failed here, at the end, where a truncated log still shows it.
  const cwd = process.cwd() + "/";
  for (const f of r.testResults) {
    const tests = f.assertionResults.filter((t) => t.status === "failed");
    if (f.status === "failed" && !tests.length) console.log(`  FAILED TO RUN ${f.name.replace(cwd, "")}: ${String(f.message ?? "").split("\n")[0].slice(0, 300)}`);
    for (const t of tests) console.log(`  FAILED ${f.name.replace(cwd, "")} > ${t.fullName}: ${String(t.failureMessages?.[0] ?? "").split("\n")[0].slice(0, 300)}`);
  }
  // Every test passed and npm test still failed: an error outside the tests. Count it, and
  // show what vitest printed about it.
  if (status !== "0" && r.numFailedTests === 0 && !brokenFiles) {
    failedTests++;
    console.log(`  npm test exited ${status} although no test failed; from its log:`);
    const text = readFileSync(log, "utf8").replace(ANSI, "").split("\n");
    // Passing tests print expected errors too: vitest's own block comes last, then npm's.
    let at = text.findLastIndex((l) => /Unhandled (Errors?|Rejections?)/.test(l));
    if (at < 0) at = text.findIndex((l) => /ERR!/.test(l));
    for (const l of text.slice(at < 0 ? -15 : at, at < 0 ? undefined : at + 25)) console.log(`    ${l.slice(0, 300)}`);
  }
}
// The release-artifact check counts as one test, and so does leaving no temporary directory behind.
console.log(`release artifact (scripts/check-pack.sh): ${artifact}`);
if (process.env.RESTORED !== "ok") { console.log("better-sqlite3 for the machine's Node.js could not be put back"); failedTests++; }
if (artifact === "ok") passed++; else failedTests++;
const leftovers = Number(process.env.LEFTOVERS);
console.log(`temporary directories left by passing runs: ${leftovers}`);
if (leftovers === 0) passed++; else failedTests++;
console.log(`${passed} passed, ${failedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
process.exitCode = failedTests === 0 ? 0 : 1;
