//! Usage charts drawn on the server as SVG bar charts: no script, no inline style (colours
//! come from classes in `console.css`), every number also in a `<title>` and in a table.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;
/// At most this many labels on the x axis.
const X_LABELS: usize = 8;

/// One bar: its label (a time) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Point {
    pub label: String,
    pub value: u64,
}

/// The smallest "nice" number (1, 2 or 5 × 10ⁿ) at or above `max`; at least 1.
pub(crate) fn nice_ceiling(max: u64) -> u64 {
    if max <= 1 {
        return 1;
    }
    let mut magnitude: u64 = 1;
    while let Some(next) = magnitude.checked_mul(10) {
        if next > max {
            break;
        }
        magnitude = next;
    }
    for step in [1u64, 2, 5, 10] {
        if let Some(candidate) = magnitude.checked_mul(step)
            && candidate >= max
        {
            return candidate;
        }
    }
    max
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG bar chart of `points`, titled `title`; `class` colours the bars.
pub(crate) fn bar_chart(title: &str, class: &str, points: &[Point]) -> String {
    let max = points.iter().map(|p| p.value).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let total: u64 = points.iter().map(|p| p.value).sum();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}: {total} in all" xmlns="http://www.w3.org/2000/svg"><title>{t}: {total} in all</title>"#,
        t = escape(title),
    );
    // Axes and gridlines at 0, half and the top.
    let half = if top.is_multiple_of(2) {
        (top / 2).to_string()
    } else {
        format!("{:.1}", top as f64 / 2.0)
    };
    for (i, value) in ["0".to_owned(), half, top.to_string()]
        .into_iter()
        .enumerate()
    {
        let y = TOP + plot_h - plot_h * (i as f64) / 2.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{value}</text>"#,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0,
        );
    }
    if points.is_empty() || max == 0 {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{x}" y="{y}" text-anchor="middle">No data in this period</text>"#,
            x = LEFT + plot_w / 2.0,
            y = TOP + plot_h / 2.0,
        );
    }
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.8).max(1.0);
    let every = points.len().div_ceil(X_LABELS).max(1);
    for (i, p) in points.iter().enumerate() {
        let h = plot_h * (p.value as f64) / (top as f64);
        let x = LEFT + slot * (i as f64) + (slot - bar_w) / 2.0;
        let y = TOP + plot_h - h;
        let _ = write!(
            svg,
            r#"<rect class="bar {class}" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}"><title>{label}: {value}</title></rect>"#,
            label = escape(&p.label),
            value = p.value,
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{cx:.1}" y="{ly}" text-anchor="middle">{label}</text>"#,
                cx = x + bar_w / 2.0,
                ly = HEIGHT - BOTTOM + 16.0,
                label = escape(&p.label),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[u64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                label: format!("{i:02}:00"),
                value: *v,
            })
            .collect()
    }

    #[test]
    fn scales_are_nice_numbers_at_or_above_the_maximum() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(10), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(420), 500);
        assert_eq!(nice_ceiling(501), 1000);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_tallest_bar_fills_the_plot_and_every_value_has_a_title() {
        let svg = bar_chart("Tokens issued", "tokens", &points(&[0, 5, 10]));
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!(svg.contains(&format!(r#"height="{plot_h:.1}""#)), "{svg}");
        assert!(svg.contains(r#"height="0.0""#));
        assert!(svg.contains("<title>01:00: 5</title>"));
        assert!(svg.contains("<title>Tokens issued: 15 in all</title>"));
        assert!(!svg.contains("style"), "no inline style under the CSP");
        assert!(!svg.contains("No data"));
        assert!(
            svg.contains(">5</text>") && svg.contains(">10</text>"),
            "axis labels"
        );
        let one = bar_chart("t", "x", &points(&[1]));
        assert!(one.contains(">0.5</text>"), "half of 1 is not 0");
    }

    #[test]
    fn empty_data_says_so() {
        for data in [vec![], points(&[0, 0])] {
            let svg = bar_chart("Denials", "denied", &data);
            assert!(svg.contains("No data in this period"));
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        }
    }

    #[test]
    fn labels_are_thinned_and_escaped() {
        let svg = bar_chart("a<b", "x", &points(&[1; 24]));
        assert!(svg.contains("a&lt;b"));
        let labels = svg.matches(r#"text-anchor="middle">"#).count();
        assert!(labels <= X_LABELS, "{labels} labels");
        assert_eq!(svg.matches("<rect").count(), 24);
    }
}
