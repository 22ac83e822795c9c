// The demo chat's page: sign up, log in, see who is online, send direct messages.
// It speaks websuckets' wire protocol through the client the server offers at /websuckets.js.
import { WebSucketsClient } from "/websuckets.js";

const USERS_EVERY_MS = 1000; // "user list" is a request: the page asks again this often

const $ = (id) => document.getElementById(id);
const scheme = location.protocol === "https:" ? "wss" : "ws";
const client = new WebSucketsClient(`${scheme}://${location.host}/`);
let me = null;
let refreshing = null;

function show(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function credentials() {
  return { login: $("login").value.trim(), password: $("password").value };
}

function explain(error) {
  if (error.code === "validation_error") {
    return error.details.map((item) => `${item.loc.at(-1)}: ${item.msg}`).join("; ");
  }
  return typeof error.details === "string" ? error.details : error.message;
}

function addMessage(from, to, text) {
  const hint = $("messages").querySelector(".hint");
  if (hint) hint.remove();
  const item = document.createElement("li");
  item.className = from === me ? "mine" : "";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = from === me ? `you → ${to}` : `${from} → you`;
  item.append(who, text);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function showUsers(logins) {
  const list = $("users");
  const select = $("to");
  const chosen = select.value;
  list.replaceChildren();
  select.replaceChildren(new Option("choose someone online", ""));
  for (const login of logins) {
    const item = document.createElement("li");
    item.textContent = login === me ? `${login} (you)` : login;
    item.dataset.login = login;
    if (login === me) {
      item.className = "me";
    } else {
      item.addEventListener("click", () => {
        select.value = login;
        $("text").focus();
      });
      select.add(new Option(login, login, false, login === chosen));
    }
    list.append(item);
  }
}

async function refreshUsers() {
  try {
    showUsers(await client.request("user list", undefined, { timeout: 5000 }));
  } catch (error) {
    if (error.code === "unauthorized") stopRefreshing();
  }
}

function stopRefreshing() {
  clearInterval(refreshing);
  refreshing = null;
}

$("signup").addEventListener("click", async () => {
  if (!$("credentials").reportValidity()) return;
  try {
    const { login } = await client.request("user create", credentials());
    show(`signed up as ${login}: now log in`);
  } catch (error) {
    show(explain(error), true);
  }
});

$("credentials").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  try {
    const { login } = await client.request("user auth", credentials()); // the client keeps the token
    me = login;
    show(`logged in as ${login}`);
    stopRefreshing();
    await refreshUsers();
    refreshing = setInterval(refreshUsers, USERS_EVERY_MS);
  } catch (error) {
    show(explain(error), true);
  }
});

$("compose").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const to = $("to").value;
  const text = $("text").value;
  try {
    await client.request("chat send", { to, text });
    addMessage(me, to, text);
    $("text").value = "";
  } catch (error) {
    show(explain(error), true);
  }
});

client.on("incoming message", ({ from, text }) => addMessage(from, me, text));

client.on("open", () => {
  $("connection").textContent = "connected";
  $("connection").className = "online";
  if (me !== null) refreshUsers(); // the kept token verifies the new connection again
});

client.on("close", ({ reconnectIn }) => {
  $("connection").textContent = reconnectIn === null ? "disconnected" : "reconnecting…";
  $("connection").className = "offline";
});

$("messages").innerHTML = '<li class="hint">no messages yet</li>';
