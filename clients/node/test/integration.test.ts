import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import {
  TokenStatus,
  ValidateResult,
  createTokenClient,
  getPrincipal,
  requireToken,
  requireTokenMiddleware,
  type GenerateResponse,
  type Principal,
  type TokenClient,
} from "../src/index.js";
import { close, get, listen } from "./http-helpers.js";
import { TokendProcess, type CreatedToken } from "./tokend-process.js";

/** Drops the warnings that these tests provoke on purpose. */
const silent = { warn: () => {} };

const testRoot = mkdtempSync(join(tmpdir(), "tokend-node-client-"));
after(() => rmSync(testRoot, { recursive: true, force: true }));

let ownerCounter = 0;
/** Keeps each test's tokens apart on the shared server. */
function uniqueOwner(): string {
  ownerCounter++;
  return `owner-${process.pid}-${Date.now()}-${ownerCounter}`;
}

async function generate(
  admin: TokenClient,
  owner: string,
  name: string,
  ttlMs: number,
  scopes: string[],
): Promise<GenerateResponse> {
  return admin.generate({ owner, name, scopes, expiration: { case: "ttl", value: durationFromMs(ttlMs) } });
}

async function expectCode(promise: Promise<unknown>, code: Code): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${String(error)}`);
    assert.equal(Code[error.code], Code[code], error.message);
    return true;
  });
}

/**
 * Waits until tokend responds to RPCs, because a TCP connect can succeed
 * before the server is ready. Gives up after 100 attempts.
 */
async function waitReady(client: TokenClient): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await client.list({ pageSize: 1 }, { timeoutMs: 1_000 });
      return;
    } catch (error) {
      lastError = error;
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  throw new Error(`tokend did not answer List: ${String(lastError)}`);
}

describe("with a real tokend", () => {
  let tokend: TokendProcess;
  let adminToken: CreatedToken;
  let admin: TokenClient;
  const clients: TokenClient[] = [];

  function newClient(token: string): TokenClient {
    const client = createTokenClient({ baseUrl: tokend.baseUrl, token });
    clients.push(client);
    return client;
  }

  before(async () => {
    tokend = await TokendProcess.start(testRoot);
    adminToken = await tokend.createToken("admin", "node client tests", ["tokens:admin"]);
    admin = newClient(adminToken.secret);
    await waitReady(admin);
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    await tokend?.stop();
  });

  describe("TokenService RPCs", () => {
    const owner = uniqueOwner();
    let first: GenerateResponse;
    let second: GenerateResponse;
    const start = Date.now();

    before(async () => {
      first = await generate(admin, owner, "first", 3_600_000, ["repo:write", "repo:read"]);
      second = await generate(admin, owner, "second", 7_200_000, ["repo:read"]);
    });

    it("Generate returns the secret and metadata", () => {
      const token = first.token;
      assert.ok(token);
      assert.notEqual(first.secret, "");
      assert.notEqual(token.id, "");
      assert.equal(token.owner, owner);
      assert.equal(token.name, "first");
      assert.deepEqual(token.scopes, ["repo:read", "repo:write"]);
      assert.equal(token.status, TokenStatus.ACTIVE);
      assert.ok(token.displayHint.endsWith(first.secret.slice(-4)), `display hint ${token.displayHint}`);
      assert.ok(token.createdAt, "created_at is unset");
      assert.ok(token.expiresAt, "expires_at is unset");
      const created = timestampDate(token.createdAt).getTime();
      assert.ok(Math.abs(created - start) < 60_000, `created_at ${created} far from ${start}`);
      const lifetime = timestampDate(token.expiresAt).getTime() - created;
      assert.ok(Math.abs(lifetime - 3_600_000) <= 1_000, `lifetime ${lifetime} ms, want 1 h`);
      assert.equal(token.lastUsedAt, undefined);
      assert.equal(token.revokedAt, undefined);
    });

    it("List returns the owner's tokens newest first", async () => {
      const response = await admin.list({ owner });
      assert.deepEqual(
        response.tokens.map((token) => token.id),
        [second.token?.id, first.token?.id],
      );
      assert.equal(response.nextPageToken, "");
    });

    it("List pages with page_size 1", async () => {
      const page1 = await admin.list({ owner, pageSize: 1 });
      assert.equal(page1.tokens.length, 1);
      assert.notEqual(page1.nextPageToken, "");
      const page2 = await admin.list({ owner, pageSize: 1, pageToken: page1.nextPageToken });
      assert.deepEqual(
        page2.tokens.map((token) => token.id),
        [first.token?.id],
      );
    });

    it("Validate reports valid, missing scope and malformed", async () => {
      const valid = await admin.validate(first.secret, ["repo:read"]);
      assert.equal(valid.valid, true);
      assert.equal(valid.result, ValidateResult.VALID);
      assert.equal(valid.token?.id, first.token?.id);
      assert.equal(valid.token?.owner, owner);

      const lacking = await admin.validate(first.secret, ["admin:everything"]);
      assert.equal(lacking.valid, false);
      assert.equal(lacking.result, ValidateResult.INSUFFICIENT_SCOPE);

      const garbage = await admin.validate("not a token");
      assert.equal(garbage.valid, false);
      assert.equal(garbage.result, ValidateResult.MALFORMED);
    });

    it("Revoke ends access and is idempotent", async () => {
      const id = first.token?.id ?? "";
      const revoked = await admin.revoke(id);
      assert.ok(revoked.token?.revokedAt, "revoked_at is unset");
      assert.equal(revoked.token.status, TokenStatus.REVOKED);

      const again = await admin.revoke(id);
      assert.ok(again.token?.revokedAt);
      assert.equal(timestampDate(again.token.revokedAt).getTime(), timestampDate(revoked.token.revokedAt).getTime());

      const validation = await admin.validate(first.secret);
      assert.equal(validation.valid, false);
      assert.equal(validation.result, ValidateResult.REVOKED);

      const listed = await admin.list({ owner });
      assert.deepEqual(
        listed.tokens.map((token) => token.id),
        [second.token?.id],
      );
      const withRevoked = await admin.list({ owner, includeRevoked: true });
      assert.equal(withRevoked.tokens.length, 2);

      await expectCode(admin.revoke("0190f5c2-0000-7000-8000-000000000000"), Code.NotFound);
    });

    it("reports caller errors as status codes", async () => {
      const plain = newClient(second.secret);
      await expectCode(plain.validate(second.secret), Code.PermissionDenied);

      const unknown = newClient("tkn_notarealtoken");
      await expectCode(unknown.list({}), Code.Unauthenticated);
    });
  });

  it("round-trips a Unicode name byte for byte", async () => {
    const owner = uniqueOwner();
    // Precomposed é (U+00E9) and an emoji outside the Basic Multilingual
    // Plane, written as escapes so the bytes under test are unambiguous.
    const name = "d\u00e9ploiement \u{1F680}";
    const generated = await generate(admin, owner, name, 3_600_000, ["repo:read"]);
    assert.deepEqual(Buffer.from(generated.token?.name ?? "", "utf8"), Buffer.from(name, "utf8"));

    const listed = await admin.list({ owner });
    assert.equal(listed.tokens.length, 1);
    assert.deepEqual(Buffer.from(listed.tokens[0]?.name ?? "", "utf8"), Buffer.from(name, "utf8"));
  });

  describe("middleware", () => {
    const owner = uniqueOwner();
    let server: Server;
    let url = "";
    let handlerRuns = 0;
    let seen: Principal | undefined;
    let reader: GenerateResponse;
    let writer: GenerateResponse;
    let revoked: GenerateResponse;
    let expiring: GenerateResponse;

    before(async () => {
      const validator = await generate(admin, "service-a", "middleware tests", 3_600_000, ["tokens:validate"]);
      const service = newClient(validator.secret);
      server = createServer(
        requireToken(
          service,
          (request, response) => {
            handlerRuns++;
            seen = request.principal;
            response.end("ok");
          },
          { requiredScopes: ["repo:read"], logger: silent },
        ),
      );
      url = await listen(server);

      reader = await generate(admin, owner, "reader", 3_600_000, ["repo:read", "repo:write"]);
      writer = await generate(admin, owner, "writer only", 3_600_000, ["repo:write"]);
      revoked = await generate(admin, owner, "revoked", 3_600_000, ["repo:read"]);
      await admin.revoke(revoked.token?.id ?? "");
      expiring = await generate(admin, owner, "expiring", 1_000, ["repo:read"]);
      await new Promise((done) => setTimeout(done, 1_500));
    });

    after(() => close(server));

    it("admits a valid token and passes the principal", async () => {
      seen = undefined;
      const before = handlerRuns;
      const response = await get(url, [`Bearer ${reader.secret}`]);
      assert.equal(response.status, 200);
      assert.equal(handlerRuns, before + 1);
      assert.deepEqual(seen, {
        tokenId: reader.token?.id,
        owner,
        name: "reader",
        scopes: ["repo:read", "repo:write"],
        expiresAt: reader.token?.expiresAt ? timestampDate(reader.token.expiresAt) : undefined,
      });
    });

    for (const [name, prefix] of [
      ["a lower-case scheme", "bearer "],
      ["an upper-case scheme and spaces", "BEARER   "],
    ] as const) {
      it(`admits ${name}`, async () => {
        const response = await get(url, [`${prefix}${reader.secret}`]);
        assert.equal(response.status, 200);
      });
    }

    /** Returns the secret with one letter of its random part changed. */
    function changedLetter(secret: string): string {
      const middle = Math.floor(secret.length / 2);
      const replacement = secret[middle] === "A" ? "B" : "A";
      return secret.slice(0, middle) + replacement + secret.slice(middle + 1);
    }

    const cases: Array<[string, () => string[], number, string | RegExp]> = [
      ["missing header", () => [], 401, "Bearer"],
      ["basic scheme", () => ["Basic dXNlcjpwYXNz"], 401, 'Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"'],
      ["scheme without token", () => ["Bearer"], 401, 'Bearer error="invalid_token", error_description="the Bearer credential has no token"'],
      ["bare token", () => [reader.secret], 401, 'Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"'],
      ["garbage token", () => ["Bearer tkn_garbage"], 401, 'Bearer error="invalid_token", error_description="the token is malformed"'],
      // tokend returns MALFORMED when the checksum detects the change and
      // NOT_FOUND otherwise. Both are invalid_token.
      ["changed letter", () => [`Bearer ${changedLetter(reader.secret)}`], 401, /^Bearer error="invalid_token"/],
      ["two headers", () => [`Bearer ${reader.secret}`, `Bearer ${reader.secret}`], 400, 'Bearer error="invalid_request", error_description="the request has more than one Authorization value"'],
      ["revoked token", () => [`Bearer ${revoked.secret}`], 401, 'Bearer error="invalid_token", error_description="the token was revoked"'],
      ["expired token", () => [`Bearer ${expiring.secret}`], 401, 'Bearer error="invalid_token", error_description="the token expired"'],
      ["insufficient scope", () => [`Bearer ${writer.secret}`], 403, 'Bearer error="insufficient_scope", error_description="the token lacks a required scope: repo:read", scope="repo:read"'],
    ];
    for (const [name, authorization, status, challenge] of cases) {
      it(`answers ${status} for ${name}`, async () => {
        const before = handlerRuns;
        const response = await get(url, authorization());
        assert.equal(response.status, status);
        const header = response.headers["www-authenticate"] ?? "";
        if (challenge instanceof RegExp) {
          assert.match(header, challenge);
        } else {
          assert.equal(header, challenge);
        }
        assert.equal(handlerRuns, before, "the handler ran for a rejected request");
      });
    }
  });

  it("answers 503 when tokend stops mid-test", async () => {
    const stopping = await TokendProcess.start(testRoot);
    const servers: Server[] = [];
    const local: TokenClient[] = [];
    try {
      const stopAdminToken = await stopping.createToken("admin", "stop test", ["tokens:admin"]);
      const stopAdmin = createTokenClient({ baseUrl: stopping.baseUrl, token: stopAdminToken.secret });
      local.push(stopAdmin);
      await waitReady(stopAdmin);
      const validator = await generate(stopAdmin, "service-c", "stop test", 3_600_000, ["tokens:validate"]);
      const user = await generate(stopAdmin, "alice", "stop test", 3_600_000, ["repo:read"]);
      const service = createTokenClient({ baseUrl: stopping.baseUrl, token: validator.secret });
      local.push(service);

      let handlerRuns = 0;
      const plain = createServer(
        requireToken(
          service,
          (_request, response) => {
            handlerRuns++;
            response.end("ok");
          },
          { requiredScopes: ["repo:read"], logger: silent },
        ),
      );
      servers.push(plain);
      const middleware = requireTokenMiddleware(service, { requiredScopes: ["repo:read"], logger: silent });
      const express = createServer((request, response) =>
        middleware(request, response, () => {
          handlerRuns++;
          response.end(getPrincipal(request)?.owner ?? "none");
        }),
      );
      servers.push(express);
      const plainUrl = await listen(plain);
      const expressUrl = await listen(express);
      const authorization = [`Bearer ${user.secret}`];

      assert.equal((await get(plainUrl, authorization)).status, 200);
      const expressOk = await get(expressUrl, authorization);
      assert.equal(expressOk.status, 200);
      assert.equal(expressOk.body, "alice");
      assert.equal(handlerRuns, 2);

      await stopping.stop();

      const plainDown = await get(plainUrl, authorization);
      assert.equal(plainDown.status, 503);
      assert.equal(plainDown.headers["www-authenticate"], undefined);
      assert.equal((await get(expressUrl, authorization)).status, 503);
      assert.equal(handlerRuns, 2, "a handler ran while tokend was stopped");
      await expectCode(service.validate(user.secret, ["repo:read"]), Code.Unavailable);
    } finally {
      for (const client of local) {
        client.close();
      }
      for (const server of servers) {
        await close(server);
      }
      await stopping.stop();
    }
  });
});
