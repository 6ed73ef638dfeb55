import { spawn, execFile, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdtempSync, openSync, closeSync, readFileSync, statSync } from "node:fs";
import { createConnection, createServer, type AddressInfo } from "node:net";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Bounds the wait for a new tokend to accept connections. */
const START_TIMEOUT_MS = 30_000;
/** Bounds the wait after SIGTERM before the process is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Retries with a new port when another process took the chosen one. */
const START_ATTEMPTS = 3;

/** The package root (clients/node); compiled tests live in build/test/. */
const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The id and secret of a token made by `tokend admin create-token`. */
export interface CreatedToken {
  id: string;
  secret: string;
}

/**
 * The JSON that `tokend admin create-token --output json` prints: the
 * token's metadata under "token", as in GenerateResponse, and the secret. A
 * top-level "id" is accepted too.
 */
interface CreateTokenOutput {
  id?: unknown;
  token?: { id?: unknown };
  secret?: unknown;
}

/**
 * Returns the tokend binary to test: TOKEND_BIN, or the debug build of this
 * repository. A relative TOKEND_BIN is taken relative to the package root
 * (clients/node).
 */
export function tokendBinary(): string {
  const configured = process.env["TOKEND_BIN"] || join("..", "..", "target", "debug", "tokend");
  const binary = isAbsolute(configured) ? configured : resolve(PACKAGE_ROOT, configured);
  try {
    if (!statSync(binary).isFile()) {
      throw new Error("not a file");
    }
    accessSync(binary, constants.X_OK);
  } catch (error) {
    throw new Error(
      `tokend binary not found or not executable at ${binary}: build it with \`cargo build\` in the repository root or set TOKEND_BIN (${String(error)})`,
    );
  }
  return binary;
}

/**
 * Returns the environment without TOKEND_* variables, so a developer's
 * TOKEND_DATABASE_URL or TOKEND_TOKEN cannot redirect the server under test.
 */
function tokendEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("TOKEND_")) {
      env[name] = value;
    }
  }
  return env;
}

/** A tokend server started by a test, on its own data directory and port. */
export class TokendProcess {
  readonly addr: string;
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(
    readonly binary: string,
    readonly dataDir: string,
    readonly logPath: string,
    port: number,
    private readonly child: ChildProcess,
  ) {
    this.addr = `127.0.0.1:${port}`;
    this.exit = once(child, "exit").then(() => {
      this.exited = true;
    });
  }

  /** URL for createTokenClient. */
  get baseUrl(): string {
    return `http://${this.addr}`;
  }

  /**
   * Starts `tokend serve` on a fresh data directory under parentDir, with
   * serveFlags appended (such as --tls-cert), and waits until it accepts
   * TCP connections.
   */
  static async start(parentDir: string, serveFlags: readonly string[] = []): Promise<TokendProcess> {
    const binary = tokendBinary();
    const dataDir = mkdtempSync(join(parentDir, "tokend-"));
    let lastError: unknown;
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      const port = await freeLoopbackPort();
      const logPath = join(dataDir, `serve-${attempt}.log`);
      const log = openSync(logPath, "w");
      const args = ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, ...serveFlags];
      const child = spawn(binary, args, {
        env: tokendEnv(),
        stdio: ["ignore", log, log],
      });
      closeSync(log);
      const server = new TokendProcess(binary, dataDir, logPath, port, child);
      try {
        await server.waitListening(port);
        return server;
      } catch (error) {
        lastError = error;
        const exitedByItself = server.exited;
        await server.stop();
        if (!exitedByItself) {
          break;
        }
      }
    }
    throw lastError;
  }

  /** Polls a TCP connect until it succeeds, the process exits or the timeout passes. */
  private async waitListening(port: number): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new Error(`tokend exited before listening (exit code ${this.child.exitCode})\n${this.logTail()}`);
      }
      try {
        await tcpConnect(port);
        return;
      } catch (error) {
        lastError = error;
      }
      await new Promise((done) => setTimeout(done, 100));
    }
    throw new Error(`tokend at ${this.addr} not listening after ${START_TIMEOUT_MS} ms: ${String(lastError)}\n${this.logTail()}`);
  }

  /**
   * Runs `tokend admin create-token` against the data directory, which
   * writes to the database without going through the server.
   */
  async createToken(owner: string, name: string, scopes: readonly string[]): Promise<CreatedToken> {
    const args = ["admin", "create-token", "--data-dir", this.dataDir, "--owner", owner, "--name", name, "--output", "json"];
    for (const scope of scopes) {
      args.push("--scope", scope);
    }
    const stdout = await new Promise<string>((done, fail) => {
      execFile(this.binary, args, { env: tokendEnv(), timeout: START_TIMEOUT_MS }, (error, out, err) => {
        if (error) {
          fail(new Error(`tokend admin create-token failed: ${error.message}\nstderr:\n${err}`));
        } else {
          done(out);
        }
      });
    });
    const output = JSON.parse(stdout) as CreateTokenOutput;
    const id = output.token?.id ?? output.id;
    if (typeof id !== "string" || typeof output.secret !== "string" || id === "" || output.secret === "") {
      throw new Error(`tokend admin create-token output lacks token.id or secret (${stdout.length} characters of output)`);
    }
    return { id, secret: output.secret };
  }

  /** Sends SIGTERM and waits for the exit, killing the process after STOP_TIMEOUT_MS. */
  async stop(): Promise<void> {
    if (this.exited) {
      return;
    }
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((done) => {
      timer = setTimeout(() => done("timeout"), STOP_TIMEOUT_MS);
    });
    const outcome = await Promise.race([this.exit, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      this.child.kill("SIGKILL");
      await this.exit;
    }
  }

  logTail(): string {
    try {
      const log = readFileSync(this.logPath, "utf8");
      return `tokend log (${this.logPath}):\n${log.slice(-4000)}`;
    } catch (error) {
      return `tokend log unreadable: ${String(error)}`;
    }
  }
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

function tcpConnect(port: number): Promise<void> {
  return new Promise((done, fail) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.setTimeout(1_000);
    socket.once("connect", () => {
      socket.end();
      done();
    });
    socket.once("timeout", () => {
      socket.destroy();
      fail(new Error("connect timed out"));
    });
    socket.once("error", fail);
  });
}
