// The dashboard at GET /: renders /api/v1/status and follows it live over server-sent events
// (/api/v1/events). Bundled with Preact by scripts/build-ui.mjs; every value is escaped by Preact.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { formatBytes as bytes, formatDuration as duration, formatRatio } from "../observe/format.js";
import type { StatusV1, TrafficStatus, UpstreamStatus } from "../observe/status-types.js";

const percent = (r: number | null): string => formatRatio(r, "–");

function App() {
  const [status, setStatus] = useState<StatusV1 | undefined>(undefined);
  const [live, setLive] = useState<"connecting" | "live" | "reconnecting">("connecting");
  useEffect(() => {
    const source = new EventSource("/api/v1/events");
    source.addEventListener("status", (e) => {
      setStatus(JSON.parse((e as MessageEvent<string>).data) as StatusV1);
      setLive("live");
    });
    // EventSource reconnects by itself; say so meanwhile.
    source.onerror = () => setLive("reconnecting");
    return () => source.close();
  }, []);
  return (
    <>
      <header>
        <h1>mirror-kit</h1>
        <span class="live" data-testid="live">
          {live}
          {status ? ` · updated ${time(status.generatedAt)} · up since ${time(status.startedAt)}` : ""}
        </span>
      </header>
      {status ? <Dashboard s={status} /> : <p class="muted">Waiting for the mirror…</p>}
    </>
  );
}

function Dashboard({ s }: { s: StatusV1 }) {
  const t = s.traffic;
  return (
    <main>
      <section data-testid="cache">
        <h2>Cache</h2>
        <div class="big">{bytes(s.cache.sizeBytes)}</div>
        <div class="muted">{s.cache.maxBytes === null ? "no size cap" : `of ${bytes(s.cache.maxBytes)} cap`} · {s.cache.objects} objects</div>
        {s.cache.maxBytes !== null && <Bar part={s.cache.sizeBytes} whole={s.cache.maxBytes} />}
      </section>
      <section data-testid="saved">
        <h2>Saved</h2>
        <div class="big" data-testid="bytes-saved">{bytes(t.allTime.bytesSaved)}</div>
        <div class="muted">
          served from cache since {day(s.countingSince)}
          {t.allTime.secondsSaved !== null ? ` · about ${duration(t.allTime.secondsSaved)} of downloading` : ""}
        </div>
      </section>
      <section class="wide" data-testid="traffic">
        <h2>Hits and bytes</h2>
        <table>
          <thead>
            <tr><th></th><th class="num">requests</th><th class="num">hit ratio</th><th class="num">from cache</th><th class="num">from upstream</th><th class="num">byte hit ratio</th><th class="num">fetched</th><th class="num">time saved</th></tr>
          </thead>
          <tbody>
            <TrafficRow label="last hour" t={t.lastHour} />
            <TrafficRow label="last day" t={t.lastDay} />
            <TrafficRow label="all time" t={t.allTime} />
          </tbody>
        </table>
      </section>
      <section class="wide" data-testid="upstreams">
        <h2>Upstreams</h2>
        <table>
          <thead>
            <tr><th>upstream</th><th>state</th><th class="num">requests</th><th class="num">latency</th><th>rate-limit budget</th><th>last error</th></tr>
          </thead>
          <tbody>{s.upstreams.map((u) => <UpstreamRow key={u.name} u={u} />)}</tbody>
        </table>
      </section>
      <section class="wide" data-testid="downloads">
        <h2>Downloads in progress</h2>
        {s.downloads.length === 0 ? <p class="muted">none</p> : (
          <table>
            <tbody>
              {s.downloads.map((d) => (
                <tr key={d.digest}>
                  <td>{d.upstream}/{d.repository}</td>
                  <td class="muted">{d.digest.slice(0, 19)}</td>
                  <td style="width:40%">{d.sizeBytes !== null ? <Bar part={d.receivedBytes} whole={d.sizeBytes} /> : null}</td>
                  <td class="num">{bytes(d.receivedBytes)}{d.sizeBytes !== null ? ` / ${bytes(d.sizeBytes)}` : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section class="wide" data-testid="recent-pulls">
        <h2>Recent pulls</h2>
        {s.recentPulls.length === 0 ? <p class="muted">none yet</p> : (
          <table>
            <thead><tr><th>when</th><th>image</th><th>client</th><th>result</th></tr></thead>
            <tbody>
              {s.recentPulls.slice(0, 20).map((p) => (
                <tr key={p.at + p.image + p.client}>
                  <td>{time(p.at)}</td>
                  <td class="wrap">{p.image}</td>
                  <td>{p.client}</td>
                  <td><span class={`badge ${p.result}`}>{p.result === "error" ? `error ${p.status}` : p.result}</span></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section data-testid="largest">
        <h2>Largest cached images</h2>
        <ImageTable rows={s.images.largest.map((i) => [i.image, bytes(i.sizeBytes)])} />
      </section>
      <section data-testid="most-used">
        <h2>Most used images</h2>
        <ImageTable rows={s.images.mostUsed.map((i) => [i.image, `${i.pulls} pull${i.pulls === 1 ? "" : "s"}`])} />
      </section>
    </main>
  );
}

function TrafficRow({ label, t }: { label: string; t: TrafficStatus }) {
  return (
    <tr>
      <th>{label}</th>
      <td class="num">{t.requests}</td>
      <td class="num">{percent(t.hitRatio)}</td>
      <td class="num">{bytes(t.bytesFromCache)}</td>
      <td class="num">{bytes(t.bytesFromUpstream)}</td>
      <td class="num">{percent(t.byteHitRatio)}</td>
      <td class="num">{bytes(t.bytesFetched)}</td>
      <td class="num">{t.secondsSaved === null ? "–" : duration(t.secondsSaved)}</td>
    </tr>
  );
}

function UpstreamRow({ u }: { u: UpstreamStatus }) {
  const rl = u.rateLimit;
  return (
    <tr>
      <td>{u.name}</td>
      <td>
        <span class={`badge ${u.state}`}>{u.state}</span>
        {u.retryAfter ? <span class="muted"> until {time(u.retryAfter)}</span> : null}
      </td>
      <td class="num">{u.requests}</td>
      <td class="num">{u.latencyMs === null ? "–" : `${Math.round(u.latencyMs)} ms`}</td>
      <td data-testid={`ratelimit-${u.name}`}>
        {rl ? (
          <>
            {rl.remaining} / {rl.limit}
            {rl.windowSeconds !== null ? <span class="muted"> per {duration(rl.windowSeconds)}</span> : null}
            <Bar part={rl.remaining} whole={rl.limit} low={u.revalidationBackoff !== null || rl.remaining / Math.max(1, rl.limit) < 0.1} />
          </>
        ) : <span class="muted">not announced</span>}
        {u.revalidationBackoff ? <div class="wrap" data-testid={`backoff-${u.name}`}>backing off: {u.revalidationBackoff.reason}</div> : null}
      </td>
      <td class="wrap">{u.lastError ? `${u.lastError.message} (${time(u.lastError.at)})` : <span class="muted">none</span>}</td>
    </tr>
  );
}

function ImageTable({ rows }: { rows: [string, string][] }) {
  if (rows.length === 0) return <p class="muted">none yet</p>;
  return (
    <table>
      <tbody>
        {rows.map(([image, figure]) => (
          <tr key={image}><td class="wrap">{image}</td><td class="num">{figure}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

function Bar({ part, whole, low = false }: { part: number; whole: number; low?: boolean }) {
  const pct = whole > 0 ? Math.min(100, (100 * part) / whole) : 0;
  return <div class={low ? "bar low" : "bar"}><span style={`width:${pct.toFixed(1)}%`} /></div>;
}

function time(iso: string): string {
  return new Date(iso).toLocaleTimeString();
}

function day(iso: string): string {
  return new Date(iso).toLocaleDateString();
}

render(<App />, document.getElementById("app") as HTMLElement);
