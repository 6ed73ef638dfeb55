import { ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ValidateResult, createTokenClient, type TokenClient } from "../src/index.js";
import { TokendProcess, type CreatedToken } from "./tokend-process.js";

/**
 * The certificates come from the openssl command, because Node can make
 * keys but not X.509 certificates, and a package that can would be a
 * dependency for one test. A minimal Debian system lacks openssl, so the
 * tests are skipped with this reason when it is not on PATH.
 */
const opensslMissing = findOpenssl();

function findOpenssl(): string | false {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
    return false;
  } catch (error) {
    return `openssl is not on PATH (${String(error)}); install it to run the TLS tests`;
  }
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/** PEM files of a test CA, a server certificate for 127.0.0.1 and localhost, and a client certificate. */
interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Creates the CA and both certificates in dir with the openssl commands of the README's TLS section, valid for one day. */
function createPki(dir: string): Pki {
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"];
  openssl(dir, ["req", "-x509", ...newKey, "-days", "1", "-subj", "/CN=tokend Node client test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, subject] of [
    ["server", "/CN=localhost"],
    ["client", "/CN=svc-gateway"],
  ] as const) {
    openssl(dir, ["req", ...newKey, "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
    openssl(dir, [
      "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1",
      "-out", `${name}.pem`, "-extfile", `${name}.ext`,
    ]);
  }
  return {
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
  };
}

describe("over mutual TLS with a private CA", { skip: opensslMissing }, () => {
  const testRoot = mkdtempSync(join(tmpdir(), "tokend-node-tls-"));
  let pki: Pki;
  let tokend: TokendProcess;
  let service: CreatedToken;
  let user: CreatedToken;
  const clients: TokenClient[] = [];

  function newClient(tlsOptions: { ca?: Buffer; cert?: Buffer; key?: Buffer }): TokenClient {
    const client = createTokenClient({ baseUrl: `https://${tokend.addr}`, token: service.secret, tlsOptions });
    clients.push(client);
    return client;
  }

  before(async () => {
    const pkiDir = join(testRoot, "pki");
    mkdirSync(pkiDir);
    pki = createPki(pkiDir);
    tokend = await TokendProcess.start(testRoot, [
      "--tls-cert", pki.serverCert,
      "--tls-key", pki.serverKey,
      "--tls-client-ca", pki.ca,
    ]);
    service = await tokend.createToken("svc:gateway", "node tls test", ["tokens:validate"]);
    user = await tokend.createToken("alice", "node tls user", ["tokens:self"]);
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    await tokend?.stop();
    rmSync(testRoot, { recursive: true, force: true });
  });

  it("validate works with the CA and a client certificate", async () => {
    const client = newClient({
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    const response = await client.validate(user.secret);
    assert.equal(ValidateResult[response.result], ValidateResult[ValidateResult.VALID]);
    assert.equal(response.valid, true);
    assert.equal(response.token?.owner, "alice");
  });

  it("validate fails without a client certificate", async () => {
    const client = newClient({ ca: readFileSync(pki.ca) });
    await assert.rejects(client.validate(user.secret), (error: unknown) => {
      assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${String(error)}`);
      // The server's TLS alert reaches the client as an error on the first read.
      assert.match(error.message, /certificate required/, error.message);
      return true;
    });
  });

  it("validate fails when the private CA is not trusted", async () => {
    const client = newClient({ cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
    await assert.rejects(client.validate(user.secret), (error: unknown) => {
      assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${String(error)}`);
      // Node's default CAs do not include the test CA.
      assert.match(error.message, /unable to verify|certificate/, error.message);
      return true;
    });
  });
});
