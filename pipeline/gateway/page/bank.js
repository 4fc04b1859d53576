// A bank's web page on the nbo gateway: each page visited is a journey event, the next best
// offer appears in the banner as it is decided (server-sent events, and the event's own
// decision as a fallback), its impression is reported once shown, Accept / Not interested
// report the customer's answer. The API key comes from the address (#key=…) or the form; it is
// kept for this tab only.
"use strict";

const CHANNEL = "web";
const page = {
  key: "", customer: "", decision: null, offer: null, stream: null,
};
const $ = (id) => document.getElementById(id);

function say(text) { $("status").textContent = text; }

async function call(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "X-API-Key": page.key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok && response.status !== 504) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return { status: response.status, data };
}

const newId = (prefix) => `${prefix}-${crypto.randomUUID()}`;
const now = () => new Date().toISOString();
const pretty = (offerId) => offerId.replace(/-0*(\d+)$/, " no. $1").replace(/^./, (c) => c.toUpperCase());

function show(decision) {
  if (decision.channel !== CHANNEL || decision.customer_id !== page.customer) return;
  if (page.decision && page.decision.decision_id === decision.decision_id) return;
  page.decision = decision;
  const first = decision.offers[0];
  page.offer = first ? first.offer_id : null;
  if (!first) {
    $("banner").hidden = true;
    say(`No offer for you right now (${decision.explanation}).`);
    return;
  }
  $("offer").textContent = pretty(first.offer_id);
  $("offer").dataset.offerId = first.offer_id;
  $("why").textContent = decision.explanation;
  $("accept").disabled = $("dismiss").disabled = false;
  $("banner").hidden = false;
  report("impression").then(() => say(`Offer ${first.offer_id} shown.`)).catch((e) => say(e.message));
}

function report(outcome) {
  const decision = page.decision;
  return call("/v1/interactions", {
    interaction_id: newId("i"), decision_id: decision.decision_id,
    customer_id: decision.customer_id, offer_id: page.offer, channel: CHANNEL,
    outcome, timestamp: now(),
  });
}

async function answer(outcome) {
  $("accept").disabled = $("dismiss").disabled = true;
  try {
    await report(outcome);
    say(outcome === "accept" ? `Accepted ${page.offer}. Thank you!` : `Noted: not interested in ${page.offer}.`);
    $("banner").hidden = true;
  } catch (error) {
    say(error.message);
    $("accept").disabled = $("dismiss").disabled = false;
  }
}

function follow(customer) {
  if (page.stream) page.stream.close();
  const address = `/v1/customers/${encodeURIComponent(customer)}/decisions?api_key=${encodeURIComponent(page.key)}`;
  page.stream = new EventSource(address);
  page.stream.addEventListener("decision", (message) => show(JSON.parse(message.data)));
}

async function visit(button) {
  if (!page.customer) { say("Sign in first."); return; }
  document.querySelectorAll("nav button").forEach((b) => b.removeAttribute("aria-current"));
  button.setAttribute("aria-current", "page");
  $("title").textContent = button.textContent;
  const event = {
    event_id: newId("web"), customer_id: page.customer, event_type: button.dataset.event,
    timestamp: now(), channel: CHANNEL,
  };
  try {
    const { status, data } = await call("/v1/events?wait=5000", event);
    if (status === 200) show(data);
    else say("Your offer is on its way…");
  } catch (error) { say(error.message); }
}

async function signIn(submitted) {
  submitted.preventDefault();
  page.key = $("key").value.trim();
  page.customer = $("customer").value.trim();
  sessionStorage.setItem("nbo-key", page.key);
  page.decision = null;
  $("banner").hidden = true;
  follow(page.customer);
  say(`Signed in as ${page.customer}.`);
}

async function listCustomers() {
  try {
    const { data } = await call("/v1/customers?limit=50");
    $("customers").replaceChildren(...data.map((id) => Object.assign(document.createElement("option"), { value: id })));
  } catch (error) { say(error.message); }
}

window.addEventListener("DOMContentLoaded", () => {
  const fromAddress = new URLSearchParams(location.hash.slice(1)).get("key");
  page.key = fromAddress || sessionStorage.getItem("nbo-key") || "";
  $("key").value = page.key;
  if (fromAddress) history.replaceState(null, "", location.pathname);  // the key leaves the bar
  $("who").addEventListener("submit", signIn);
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => visit(b)));
  $("accept").addEventListener("click", () => answer("accept"));
  $("dismiss").addEventListener("click", () => answer("dismiss"));
  if (page.key) listCustomers();
});
