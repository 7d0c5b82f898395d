// The limit of the runtime: a Worker that reads the body and answers 202 with an id, nothing else.
export default {
  async fetch(request) {
    await request.arrayBuffer();
    const id = crypto.randomUUID().replaceAll("-", "");
    return new Response(JSON.stringify({ id }), { status: 202, headers: { "content-type": "application/json" } });
  },
};
