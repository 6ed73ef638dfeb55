import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import {
  TokenSchema,
  TokenService,
  ValidateResponseSchema,
  ValidateResult,
  createTokenClient,
  getPrincipal,
  requireToken,
  requireTokenMiddleware,
  type Principal,
  type TokenClient,
  type ValidateRequest,
  type ValidateResponse,
} from "../src/index.js";
import { close, get, listen } from "./http-helpers.js";

/** Drops the warnings that these tests provoke on purpose. */
const silent = { warn: () => {} };

type ValidateAnswer = (request: ValidateRequest) => ValidateResponse;

/**
 * An in-process TokenService whose Validate response each test sets. It
 * covers responses that a healthy tokend does not return on demand, such as
 * UNAVAILABLE or an unknown result.
 */
class FakeTokend {
  answer: ValidateAnswer = validAnswer;
  readonly authorization: Array<string | null> = [];
  readonly requests: ValidateRequest[] = [];
  private readonly server = createHttp2Server(
    connectNodeAdapter({
      routes: (router: ConnectRouter) =>
        router.service(TokenService, {
          validate: (request, context) => {
            this.authorization.push(context.requestHeader.get("authorization"));
            this.requests.push(request);
            return this.answer(request);
          },
        }),
    }),
  );
  baseUrl = "";

  async start(): Promise<void> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    const { port } = this.server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    this.server.close();
    await once(this.server, "close");
  }
}

function validAnswer(): ValidateResponse {
  return create(ValidateResponseSchema, {
    valid: true,
    result: ValidateResult.VALID,
    token: create(TokenSchema, {
      id: "0190f5c2-0000-7000-8000-000000000001",
      owner: "alice",
      name: "ci",
      scopes: ["repo:read"],
      expiresAt: timestampFromDate(new Date("2030-01-02T03:04:05Z")),
    }),
  });
}

function resultAnswer(result: ValidateResult): ValidateAnswer {
  return () => create(ValidateResponseSchema, { result });
}

function errorAnswer(code: Code): ValidateAnswer {
  return () => {
    throw new ConnectError("fake failure", code);
  };
}

describe("with a fake tokend", () => {
  const fake = new FakeTokend();
  let client: TokenClient;
  let handlerRuns = 0;
  let seen: Principal | undefined;
  let server: Server;
  let url = "";

  before(async () => {
    await fake.start();
    client = createTokenClient({ baseUrl: fake.baseUrl, token: "tkn_caller" });
    server = createHttpServer(
      requireToken(
        client,
        (request, response) => {
          handlerRuns++;
          seen = getPrincipal(request);
          response.end("ok");
        },
        { requiredScopes: ["repo:read"], logger: silent },
      ),
    );
    url = await listen(server);
  });

  after(async () => {
    client.close();
    await close(server);
    await fake.stop();
  });

  it("sends the caller token and the request", async () => {
    fake.answer = validAnswer;
    const response = await client.validate("tkn_user", ["repo:read"]);
    assert.equal(response.result, ValidateResult.VALID);
    assert.equal(fake.authorization.at(-1), "Bearer tkn_caller");
    assert.equal(fake.requests.at(-1)?.token, "tkn_user");
    assert.deepEqual(fake.requests.at(-1)?.requiredScopes, ["repo:read"]);
  });

  it("passes the principal to the handler", async () => {
    fake.answer = validAnswer;
    seen = undefined;
    const response = await get(url, ["Bearer tkn_user"]);
    assert.equal(response.status, 200);
    assert.deepEqual(seen, {
      tokenId: "0190f5c2-0000-7000-8000-000000000001",
      owner: "alice",
      name: "ci",
      scopes: ["repo:read"],
      expiresAt: new Date("2030-01-02T03:04:05Z"),
    });
  });

  const rejections: Array<[string, ValidateAnswer, string[], number, string | undefined, number]> = [
    ["missing header", validAnswer, [], 401, "Bearer", 0],
    ["two headers", validAnswer, ["Bearer a", "Bearer b"], 400, 'Bearer error="invalid_request", error_description="the request has more than one Authorization value"', 0],
    ["basic scheme", validAnswer, ["Basic dXNlcjpwYXNz"], 401, 'Bearer error="invalid_token", error_description="the authorization scheme is not Bearer"', 0],
    ["bad token syntax", validAnswer, ["Bearer tkn_\"x\""], 401, 'Bearer error="invalid_token", error_description="the token contains characters outside the RFC 6750 b64token syntax"', 0],
    ["malformed", resultAnswer(ValidateResult.MALFORMED), ["Bearer tkn_x"], 401, 'Bearer error="invalid_token", error_description="the token is malformed"', 1],
    ["not found", resultAnswer(ValidateResult.NOT_FOUND), ["Bearer tkn_x"], 401, 'Bearer error="invalid_token", error_description="the token is not known"', 1],
    ["expired", resultAnswer(ValidateResult.EXPIRED), ["Bearer tkn_x"], 401, 'Bearer error="invalid_token", error_description="the token expired"', 1],
    ["revoked", resultAnswer(ValidateResult.REVOKED), ["Bearer tkn_x"], 401, 'Bearer error="invalid_token", error_description="the token was revoked"', 1],
    ["insufficient scope", resultAnswer(ValidateResult.INSUFFICIENT_SCOPE), ["Bearer tkn_x"], 403, 'Bearer error="insufficient_scope", error_description="the token lacks a required scope: repo:read", scope="repo:read"', 1],
    ["UNAVAILABLE", errorAnswer(Code.Unavailable), ["Bearer tkn_x"], 503, undefined, 1],
    ["INTERNAL", errorAnswer(Code.Internal), ["Bearer tkn_x"], 503, undefined, 1],
    ["PERMISSION_DENIED", errorAnswer(Code.PermissionDenied), ["Bearer tkn_x"], 503, undefined, 1],
    ["unknown result", resultAnswer(99 as ValidateResult), ["Bearer tkn_x"], 503, undefined, 1],
    ["unspecified result", resultAnswer(ValidateResult.UNSPECIFIED), ["Bearer tkn_x"], 503, undefined, 1],
    ["valid without token", () => create(ValidateResponseSchema, { valid: true, result: ValidateResult.VALID }), ["Bearer tkn_x"], 503, undefined, 1],
  ];
  for (const [name, answer, authorization, status, challenge, calls] of rejections) {
    it(`answers ${status} for ${name}`, async () => {
      fake.answer = answer;
      const runsBefore = handlerRuns;
      const callsBefore = fake.requests.length;
      const response = await get(url, authorization);
      assert.equal(response.status, status);
      assert.equal(response.headers["www-authenticate"], challenge);
      assert.equal(handlerRuns, runsBefore, "the handler ran for a rejected request");
      assert.equal(fake.requests.length - callsBefore, calls, "Validate calls");
    });
  }

  it("calls next only for an authenticated request", async () => {
    fake.answer = validAnswer;
    const middleware = requireTokenMiddleware(client, { requiredScopes: ["repo:read"], logger: silent });
    let nextCalls = 0;
    const express = createHttpServer((request, response) => {
      middleware(request, response, (error?: unknown) => {
        assert.equal(error, undefined);
        nextCalls++;
        response.end(getPrincipal(request)?.owner ?? "none");
      });
    });
    const expressUrl = await listen(express);
    try {
      const ok = await get(expressUrl, ["Bearer tkn_user"]);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, "alice");

      fake.answer = errorAnswer(Code.Unavailable);
      const down = await get(expressUrl, ["Bearer tkn_user"]);
      assert.equal(down.status, 503);
      assert.equal(nextCalls, 1);
    } finally {
      await close(express);
    }
  });

  it("answers 500 when the handler fails", async () => {
    fake.answer = validAnswer;
    const warnings: unknown[] = [];
    const failing = createHttpServer(
      requireToken(
        client,
        async () => {
          throw new Error("handler bug");
        },
        { logger: { warn: (...details: unknown[]) => warnings.push(details) } },
      ),
    );
    const failingUrl = await listen(failing);
    try {
      const response = await get(failingUrl, ["Bearer tkn_user"]);
      assert.equal(response.status, 500);
      assert.equal(warnings.length, 1);
    } finally {
      await close(failing);
    }
  });

  it("rejects a required scope no token can hold", () => {
    assert.throws(() => requireTokenMiddleware(client, { requiredScopes: ["Repo Read"] }), TypeError);
  });
});
