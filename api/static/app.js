// Field check page: gateways, devices and unclaimed DevEUIs of one municipality,
// read from the API's /v1 routes with the technician's key. No build step, no
// libraries. Everything the API returns is put into the page as text, never as HTML.
"use strict";

(function () {
  const KEY_STORE = "lorakom.key";
  const PLACE_STORE = "lorakom.municipality";
  const PAGE_SIZE = 1000;
  const MAX_PAGES = 50;
  const REFRESH_MS = 60000;
  const DEFAULT_SILENCE_S = 24 * 3600;
  const LOW_BATTERY_PERCENT = 20;
  const UNITS = {
    battery: "%", battery_voltage: "V", temperature: "°C", relative_humidity: "%",
    pressure: "hPa", light: "lx", co2: "ppm", tvoc: "ppb", pm1: "µg/m³", pm2_5: "µg/m³",
    pm4: "µg/m³", pm10: "µg/m³", soil_moisture: "%", soil_temperature: "°C",
    soil_conductivity: "µS/cm", distance: "mm", fill_level: "%", water_level: "m",
    water_pressure: "bar", sound_level_avg: "dB", sound_level_peak: "dB",
  };

  const $ = (id) => document.getElementById(id);
  let state = { key: "", place: "", devices: [], timer: null };

  function storageGet(name) {
    try { return window.localStorage.getItem(name) || ""; } catch (err) { return ""; }
  }

  function storageSet(name, value) {
    try {
      if (value) { window.localStorage.setItem(name, value); } else { window.localStorage.removeItem(name); }
    } catch (err) { /* private mode: the values live for this page only */ }
  }

  // A link like …/#key=lk_…&m=paderborn signs in; the key leaves the address bar at once.
  function readFragment() {
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const key = fragment.get("key");
    const place = fragment.get("m");
    if (key) { state.key = key; storageSet(KEY_STORE, key); }
    if (place) { state.place = place; storageSet(PLACE_STORE, place); }
    if (key || place) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text || "";
    status.classList.toggle("error", Boolean(isError));
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch (err) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  async function all(path) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const separator = path.includes("?") ? "&" : "?";
      const url = path + separator + "limit=" + PAGE_SIZE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      const body = await api(url);
      items.push(...body.items);
      cursor = body.next_cursor;
      if (!cursor) { break; }
    }
    return items;
  }

  function placePath(suffix) {
    return "v1/municipalities/" + encodeURIComponent(state.place) + suffix;
  }

  function ago(iso) {
    if (!iso) { return "never"; }
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 90) { return "just now"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 36 * 3600) { return Math.round(seconds / 3600) + " h ago"; }
    return Math.round(seconds / 86400) + " d ago";
  }

  function clock(iso) {
    if (!iso) { return ""; }
    const moment = new Date(iso);
    return moment.toLocaleString(undefined, {
      day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    });
  }

  function badge(text, kind) { return el("span", "badge " + kind, text); }

  function formatValue(quantity, value) {
    const digits = Math.abs(value) >= 100 ? 0 : 1;
    const unit = UNITS[quantity.split(":")[0]] || "";
    return value.toFixed(digits) + (unit ? " " + unit : "");
  }

  // --- gateways -------------------------------------------------------------------------

  function renderGateways(gateways) {
    const list = $("gateway-list");
    list.replaceChildren();
    const rank = (gateway) => (gateway.online === false ? 0 : gateway.online === null ? 1 : 2);
    gateways.sort((a, b) => rank(a) - rank(b) || (a.name || a.gateway_id).localeCompare(b.name || b.gateway_id));
    for (const gateway of gateways) {
      const item = el("li", "item gateway");
      item.dataset.gatewayId = gateway.gateway_id;
      const head = el("div", "item-head");
      head.append(el("span", "name", gateway.name || gateway.gateway_id));
      if (gateway.online === true) { head.append(badge("online", "good")); }
      else if (gateway.online === false) { head.append(badge("offline", "bad")); }
      else { head.append(badge("status unknown", "unknown")); }
      item.append(head);
      item.append(el("div", "id", gateway.gateway_id));
      const seen = "last seen " + ago(gateway.last_seen_at) +
        (gateway.last_seen_at ? " (" + clock(gateway.last_seen_at) + ")" : "");
      const uplink = gateway.last_uplink_at ? " · last uplink " + ago(gateway.last_uplink_at) : "";
      item.append(el("div", "meta", seen + uplink + (gateway.owner ? " · " + gateway.owner : "")));
      list.append(item);
    }
    if (!gateways.length) { list.append(el("li", "empty", "No gateways.")); }
    const offline = gateways.filter((gateway) => gateway.online === false).length;
    $("gateway-count").textContent = "(" + gateways.length + ")";
    $("sum-gateways").textContent = String(offline);
    $("sum-gateways").parentElement.classList.toggle("alarm", offline > 0);
  }

  // --- devices ---------------------------------------------------------------------------

  function deviceRows(devices, latest) {
    const valuesByEui = new Map(latest.map((row) => [row.dev_eui, row.values || {}]));
    const now = Date.now();
    return devices.map((device) => {
      const values = valuesByEui.get(device.dev_eui) || {};
      let last = null;
      for (const reading of Object.values(values)) {
        if (!last || Date.parse(reading.time) > Date.parse(last)) { last = reading.time; }
      }
      const interval = device.metadata && device.metadata.expected_interval_s;
      const limit = interval ? 2.5 * interval : DEFAULT_SILENCE_S;
      const silent = !last || (now - Date.parse(last)) / 1000 > limit;
      const battery = values.battery ? values.battery.value : null;
      const low = battery !== null && battery < LOW_BATTERY_PERCENT;
      return { device, values, last, silent, battery, low };
    });
  }

  function renderDevices() {
    const list = $("device-list");
    list.replaceChildren();
    const needle = $("filter").value.trim().toLowerCase();
    const onlyProblems = $("only-problems").checked;
    const rows = state.devices.filter((row) => {
      if (onlyProblems && !row.silent && !row.low) { return false; }
      if (!needle) { return true; }
      const device = row.device;
      const haystack = [device.name, device.dev_eui, device.use_case, ...(device.tags || [])].join(" ");
      return haystack.toLowerCase().includes(needle);
    });
    for (const row of rows) {
      const device = row.device;
      const item = el("li", "item device");
      item.dataset.devEui = device.dev_eui;
      const head = el("div", "item-head");
      head.append(el("span", "name", device.name));
      if (row.silent) { head.append(badge("silent", "bad")); }
      if (row.low) { head.append(badge("battery low", "warn")); }
      item.append(head);
      item.append(el("div", "id", device.dev_eui + (device.use_case ? " · " + device.use_case : "")));
      const battery = row.battery === null ? "battery –" : "battery " + Math.round(row.battery) + " %";
      const seen = "last reading " + ago(row.last) + (row.last ? " (" + clock(row.last) + ")" : "");
      item.append(el("div", "meta", seen + " · " + battery));
      const shown = Object.entries(row.values).filter(([name]) => name !== "battery");
      if (shown.length) {
        const values = el("dl", "values");
        shown.sort(([a], [b]) => a.localeCompare(b));
        for (const [name, reading] of shown) {
          const pair = el("div");
          pair.append(el("dt", "", name), el("dd", "", formatValue(name, reading.value)));
          values.append(pair);
        }
        item.append(values);
      }
      list.append(item);
    }
    if (!rows.length) { list.append(el("li", "empty", state.devices.length ? "No device matches." : "No devices.")); }
    const silent = state.devices.filter((row) => row.silent).length;
    $("device-count").textContent = "(" + state.devices.length + ")";
    $("sum-devices").textContent = String(silent);
    $("sum-devices").parentElement.classList.toggle("alarm", silent > 0);
  }

  // --- unclaimed --------------------------------------------------------------------------

  function renderUnclaimed(unclaimed) {
    const list = $("unclaimed-list");
    list.replaceChildren();
    unclaimed.sort((a, b) => Date.parse(b.last_seen_at) - Date.parse(a.last_seen_at));
    for (const row of unclaimed) {
      const item = el("li", "item unclaimed");
      item.dataset.devEui = row.dev_eui;
      item.append(el("div", "name id", row.dev_eui));
      const signal = row.last_rssi_dbm === null ? "" :
        " · " + row.last_rssi_dbm.toFixed(0) + " dBm" +
        (row.last_snr_db === null ? "" : " / " + row.last_snr_db.toFixed(1) + " dB");
      item.append(el("div", "meta",
        "last seen " + ago(row.last_seen_at) + " · " + row.uplink_count + " uplinks" +
        (row.last_gateway_id ? " · via " + row.last_gateway_id : "") + signal));
      list.append(item);
    }
    if (!unclaimed.length) { list.append(el("li", "empty", "None.")); }
    $("unclaimed-count").textContent = "(" + unclaimed.length + ")";
    $("sum-unclaimed").textContent = String(unclaimed.length);
  }

  // --- flow --------------------------------------------------------------------------------

  function showSetup(message) {
    $("setup").hidden = false;
    $("key").value = state.key;
    $("municipality-slug").value = state.place;
    document.body.dataset.state = "setup";
    if (message) { setStatus(message, true); }
    if (state.key) { fillMunicipalities(); }
  }

  async function fillMunicipalities() {
    const select = $("municipality");
    try {
      const places = await all("v1/municipalities");
      select.replaceChildren();
      for (const place of places) {
        const option = el("option", "", place.name + " (" + place.slug + ")");
        option.value = place.slug;
        option.selected = place.slug === state.place;
        select.append(option);
      }
      select.hidden = places.length === 0;
      $("municipality-slug").hidden = places.length > 0;
    } catch (err) {
      select.hidden = true;
      $("municipality-slug").hidden = false;
    }
  }

  async function load() {
    if (!state.key || !state.place) { showSetup(); return; }
    window.clearTimeout(state.timer);
    document.body.dataset.state = "loading";
    setStatus("Loading …");
    try {
      const [place, gateways, devices, latest, unclaimed] = await Promise.all([
        api(placePath("")),
        all(placePath("/gateways")),
        all(placePath("/devices")),
        all(placePath("/readings/latest")),
        all(placePath("/unclaimed-devices")),
      ]);
      $("place").textContent = place.name;
      document.title = "lorakom · " + place.name;
      renderGateways(gateways);
      state.devices = deviceRows(devices, latest);
      state.devices.sort((a, b) => Number(b.silent) - Number(a.silent) || Number(b.low) - Number(a.low) ||
        a.device.name.localeCompare(b.device.name));
      renderDevices();
      renderUnclaimed(unclaimed);
      $("updated").textContent = new Date().toLocaleTimeString();
      $("setup").hidden = true;
      $("content").hidden = false;
      setStatus("");
      document.body.dataset.state = "ready";
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
        showSetup(err.status === 404 ? "Unknown municipality: " + state.place : "The key was refused: " + err.message);
      } else {
        setStatus("Could not load: " + err.message + " (retrying in a minute)", true);
        document.body.dataset.state = "error";
      }
    }
    state.timer = window.setTimeout(() => { if (!document.hidden) { load(); } }, REFRESH_MS);
  }

  function start() {
    state.key = storageGet(KEY_STORE);
    state.place = storageGet(PLACE_STORE);
    readFragment();
    $("setup").addEventListener("submit", (event) => {
      event.preventDefault();
      state.key = $("key").value.trim();
      const select = $("municipality");
      state.place = (select.hidden || !select.value ? $("municipality-slug").value : select.value).trim();
      storageSet(KEY_STORE, state.key);
      storageSet(PLACE_STORE, state.place);
      setStatus("");
      load();
    });
    $("key").addEventListener("change", () => {
      state.key = $("key").value.trim();
      if (state.key) { fillMunicipalities(); }
    });
    $("forget").addEventListener("click", () => {
      state.key = "";
      storageSet(KEY_STORE, "");
      $("key").value = "";
      $("content").hidden = true;
      setStatus("The key is forgotten on this device.");
    });
    $("open-setup").addEventListener("click", () => showSetup());
    $("refresh").addEventListener("click", () => load());
    $("filter").addEventListener("input", renderDevices);
    $("only-problems").addEventListener("change", renderDevices);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) { load(); } });
    load();
  }

  start();
})();
