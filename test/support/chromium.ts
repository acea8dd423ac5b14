import { existsSync } from "node:fs";

/** Debian's chromium, which the browser tests drive with playwright-core (no browser download). */
export const CHROMIUM = "/usr/bin/chromium";

/** The network is closed: nothing in the background, no QUIC, no component or sync traffic. */
export const CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Whether the browser tests can run here. */
export const hasChromium = existsSync(CHROMIUM);

/** A browser suite's title: `title` itself, or, when Chromium is missing, `title` saying why the suite is skipped. */
export function browserSuiteTitle(title: string): string {
  return hasChromium ? title : `${title}: skipped because ${CHROMIUM} is missing (install Debian's chromium)`;
}
