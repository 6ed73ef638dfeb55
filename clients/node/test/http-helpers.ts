import { once } from "node:events";
import { request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A response read to the end. */
export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Listens on a free loopback port and returns the server's base URL. */
export async function listen(server: Server): Promise<string> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** Closes the server and every connection it keeps open. */
export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, "close");
}

/**
 * Sends GET with one Authorization header line per value. fetch would join
 * repeated values into one line, so node:http is used.
 */
export function get(url: string, authorization: readonly string[] = []): Promise<TestResponse> {
  return new Promise((done, fail) => {
    const request = httpRequest(url, { method: "GET", agent: false, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        done({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString("utf8") }),
      );
      response.on("error", fail);
    });
    if (authorization.length > 0) {
      request.setHeader("Authorization", [...authorization]);
    }
    request.on("timeout", () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on("error", fail);
    request.end();
  });
}
