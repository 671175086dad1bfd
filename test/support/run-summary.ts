/**
 * Lines a suite wants seen at the end of the whole run: the attack tallies of the security suites,
 * the differential tests' case counts, revocation times. Jest prints a suite's console output in
 * the middle of a long log; scripts/test.sh collects these lines (EXITGATE_TEST_SUMMARY names the
 * file) and prints them just before its final count.
 */
import { appendFileSync } from 'node:fs';

export function reportSummary(text: string): void {
  console.log(text);
  const file = process.env.EXITGATE_TEST_SUMMARY;
  if (file) appendFileSync(file, `${text}\n`);
}
