//! Renders a [`Report`] as one self-contained HTML page: inline CSS, no JavaScript, figures as
//! relative `<img>` links to PNGs in the same folder (with their pixel sizes, so the layout is
//! right before they load), every table, the command line, versions and stage times.

use std::fmt::Write;

use super::document::{Figure, Report, StageRecord, StageStatus, Table};

const CSS: &str = r#"
:root { --ink:#1d2430; --muted:#5b6577; --line:#dde2ea; --bg:#f6f7f9; --card:#fff;
        --ok:#1a7f37; --bad:#c0362c; --skip:#8a6d00; --accent:#2357c6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 64px; }
header h1 { font-size: 30px; margin: 0 0 4px; letter-spacing: -0.01em; }
header p.sub { margin: 0 0 14px; color: var(--muted); }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre.cmd { background:#1d2430; color:#e8edf5; padding:10px 14px; border-radius:8px;
          overflow-x:auto; white-space:pre-wrap; word-break:break-all; margin:0 0 18px; }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap:12px; margin: 8px 0 22px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.card .v { font-size: 24px; font-weight: 650; color: var(--accent); }
.card .l { font-weight: 600; }
.card .d { color: var(--muted); font-size: 13px; }
section { background:var(--card); border:1px solid var(--line); border-radius:12px;
          padding: 18px 22px; margin: 18px 0; }
section h2 { margin: 0 0 6px; font-size: 21px; display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
section h2 .t { color: var(--muted); font-size: 14px; font-weight: 500; }
.badge { font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .05em;
         padding: 2px 8px; border-radius: 999px; color:#fff; }
.badge.ok { background: var(--ok); } .badge.failed { background: var(--bad); } .badge.skipped { background: var(--skip); }
.error { border-left: 4px solid var(--bad); background:#fdf0ef; padding: 8px 12px; border-radius: 4px;
         white-space: pre-wrap; word-break: break-word; }
.skipnote { border-left: 4px solid var(--skip); background:#fbf6e4; padding: 8px 12px; border-radius: 4px; }
table { border-collapse: collapse; margin: 12px 0 16px; font-size: 14px; min-width: 50%; }
caption { text-align:left; font-weight: 600; padding-bottom: 6px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px 5px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.figs { display:flex; flex-wrap:wrap; gap: 16px; margin-top: 8px; }
figure { margin: 0; flex: 0 1 520px; max-width: 100%; }
figure.wide { flex: 1 1 100%; }
figure img { max-width: 100%; height: auto; border:1px solid var(--line); border-radius: 6px; background:#fff; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
nav ol { margin: 6px 0 0; padding-left: 22px; columns: 2; }
footer { color: var(--muted); font-size: 13px; margin-top: 28px; }
"#;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Seconds as `4.2 s`, `3 min 05 s` or `1 h 02 min`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s / 60) % 60)
    }
}

/// Whether a cell looks numeric (right-aligned).
fn numeric(cell: &str) -> bool {
    let t = cell
        .trim()
        .trim_end_matches('%')
        .trim_end_matches(" s")
        .trim();
    (!t.is_empty() && t.parse::<f64>().is_ok()) || t.starts_with('±')
}

fn render_table(out: &mut String, table: &Table) {
    out.push_str("<table>");
    if !table.caption.is_empty() {
        let _ = write!(out, "<caption>{}</caption>", escape(&table.caption));
    }
    out.push_str("<thead><tr>");
    for c in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    let width = table.columns.len();
    for row in &table.rows {
        out.push_str("<tr>");
        for i in 0..width.max(row.len()) {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            let class = if numeric(cell) { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

fn render_figure(out: &mut String, fig: &Figure) {
    // Big pictures (montages, photo sheets) get the full width; plots sit side by side.
    let class = if fig.width >= 1400 {
        " class=\"wide\""
    } else {
        ""
    };
    let _ = write!(
        out,
        "<figure{class}><a href=\"{file}\"><img src=\"{file}\" width=\"{w}\" height=\"{h}\" alt=\"{alt}\" loading=\"eager\"></a><figcaption>{cap}</figcaption></figure>",
        file = escape(&fig.file),
        w = fig.width,
        h = fig.height,
        alt = escape(&fig.caption),
        cap = escape(&fig.caption),
    );
}

fn render_stage(out: &mut String, index: usize, stage: &StageRecord) {
    let status = stage.status.name();
    let _ = writeln!(
        out,
        "<section id=\"{id}\"><h2>{n}. {title} <span class=\"badge {status}\">{status}</span> <span class=\"t\">{time}</span></h2>",
        id = escape(&stage.id),
        n = index + 1,
        title = escape(&stage.title),
        time = format_duration(stage.seconds),
    );
    if let Some(err) = &stage.error {
        let class = if stage.status == StageStatus::Skipped {
            "skipnote"
        } else {
            "error"
        };
        let _ = writeln!(out, "<p class=\"{class}\">{}</p>", escape(err));
    }
    for p in &stage.summary {
        let _ = writeln!(out, "<p>{}</p>", escape(p));
    }
    for t in &stage.tables {
        render_table(out, t);
    }
    if !stage.figures.is_empty() {
        out.push_str("<div class=\"figs\">");
        for f in &stage.figures {
            render_figure(out, f);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let failed = report.failed().count();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body><main>",
        escape(&report.title)
    );
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"sub\">{} · {} run · {} stages in {}{}</p>\
         <pre class=\"cmd\">$ {}</pre></header>",
        escape(&report.title),
        escape(&report.started_utc),
        if report.quick { "quick" } else { "full" },
        report.stages.len(),
        format_duration(report.total_seconds),
        if failed > 0 {
            format!(" · {failed} failed")
        } else {
            String::new()
        },
        escape(&report.command_line),
    );
    if !report.headlines.is_empty() {
        out.push_str("<div class=\"cards\">");
        for h in &report.headlines {
            let _ = write!(
                out,
                "<div class=\"card\"><div class=\"l\">{}</div><div class=\"v\">{}</div><div class=\"d\">{}</div></div>",
                escape(&h.label),
                escape(&h.value),
                escape(&h.detail)
            );
        }
        out.push_str("</div>\n");
    }
    // The stage overview doubles as the table of contents.
    let mut overview = Table::new("Stages", &["#", "stage", "status", "time"]);
    for (i, s) in report.stages.iter().enumerate() {
        overview.row([
            (i + 1).to_string(),
            s.title.clone(),
            s.status.name().to_string(),
            format_duration(s.seconds),
        ]);
    }
    out.push_str("<section id=\"overview\"><h2>Overview</h2><nav><ol>");
    for s in &report.stages {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&s.id),
            escape(&s.title)
        );
    }
    out.push_str("</ol></nav>");
    render_table(&mut out, &overview);
    out.push_str("</section>\n");
    for (i, s) in report.stages.iter().enumerate() {
        render_stage(&mut out, i, s);
    }
    let v = &report.versions;
    let _ = writeln!(
        out,
        "<footer><table><caption>Versions</caption><tbody>\
         <tr><td>siamese</td><td>{}</td></tr><tr><td>burn</td><td>{}</td></tr>\
         <tr><td>rustc</td><td>{}</td></tr><tr><td>machine</td><td>{} {}, {} CPUs</td></tr>\
         <tr><td>seed</td><td>{}</td></tr></tbody></table>\
         <p>Written by <code>siamese demo</code>; the same numbers are in <a href=\"report.json\">report.json</a>.</p></footer>",
        escape(&v.siamese),
        escape(&v.burn),
        escape(v.rustc.as_deref().unwrap_or("unknown")),
        escape(&v.os),
        escape(&v.arch),
        v.cpus,
        report.seed,
    );
    out.push_str("</main></body></html>\n");
    out
}
