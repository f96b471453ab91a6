// Starts `baleine serve` on a free port for a test and stops it; a tiny assertion harness that prints
// "N passed, M failed" (the line CTest and CI read).
import { spawn } from "node:child_process";

export async function startServer(bin, model, db, extra = []) {
  const proc = spawn(bin, ["serve", "--model", model, "--port", "0", "--db", db, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("server did not start: " + out + stderr)), 30000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/[\d.]+:(\d+)\//);
      if (m) { clearTimeout(timer); resolve(m[0].replace(/\/$/, "")); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error("server exited with " + code + ": " + stderr)); });
  });
  return { url, proc, stderr: () => stderr };
}

export function stopServer(s, signal = "SIGTERM") {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve(s.proc.exitCode);
    s.proc.on("exit", (code, sig) => resolve(code ?? sig));
    s.proc.kill(signal);
  });
}

export function harness() {
  let passed = 0, failed = 0;
  return {
    async check(name, fn) {
      try {
        await fn();
        passed++;
        console.log("ok   " + name);
      } catch (e) {
        failed++;
        console.log("FAIL " + name + ": " + (e && e.stack ? e.stack : e));
      }
    },
    done() {
      console.log(`${passed} passed, ${failed} failed`);
      process.exitCode = failed ? 1 : 0;
    },
  };
}

// Debian's chromium, headless, through playwright-core, with a persistent profile and no background traffic
// (the browser tests assert that the page never leaves the server's origin).
export async function launchChromium(profileDir) {
  const { chromium } = await import("playwright-core");
  return chromium.launchPersistentContext(profileDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
}
