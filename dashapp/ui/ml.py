"""Pure builders for the ML models page: results of
dashapp.services.ml_metrics in, components and figures out."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import html

from dashapp.services import ml_metrics as svc
from dashapp.ui.components import data_grid, empty_message, metric_card, metric_grid

MODELS_GRID = "models-list"
DRIFT_GRID = "models-drift"
COMPARE_GRID = "models-compare-table"
PER_CLASS_GRID = "models-per-class"

_FLOAT = {"function": "params.value == null ? '—' : d3.format('.4~f')(params.value)"}
_PVALUE = {"function": "params.value == null ? '—' : params.value < 0.0001 ? "
                       "d3.format('.1e')(params.value) : d3.format('.4f')(params.value)"}
_SIGNED = {"function": "params.value == null ? '—' : d3.format('+.4~f')(params.value)"}
LABELS = {"accuracy": "Accuracy", "precision": "Precision (macro)",
          "recall": "Recall (macro)", "f1": "F1 (macro)", "roc_auc": "ROC AUC",
          "mae": "MAE", "rmse": "RMSE", "r2": "R²"}
HIGHER_IS_BETTER = {"mae": False, "rmse": False}


def _num(field: str, header: str, fmt: dict = _FLOAT, **extra) -> dict:
    return {"field": field, "headerName": header, "type": "rightAligned",
            "filter": "agNumberColumnFilter", "valueFormatter": fmt, "minWidth": 100,
            **extra}


def _grid(id: str, rows: list[dict], columns: list[dict], empty: str,
          page_size: int = 10) -> html.Div:
    wrapper = data_grid(id, rows, columns, page_size=page_size, csv_filename=f"{id}.csv",
                        row_count=False)
    grid = wrapper.children[1]
    grid.dashGridOptions = {**grid.dashGridOptions, "localeText": {"noRowsToShow": empty}}
    return wrapper


def figure() -> go.Figure:
    return go.Figure(layout={"template": "ops_light"})


def empty_figure(message: str) -> go.Figure:
    return empty_message(figure(), message)


def _margins(fig: go.Figure, **layout) -> go.Figure:
    fig.update_layout(margin={"l": 52, "r": 12, "t": 12, "b": 40},
                      legend={"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left",
                              "yanchor": "bottom"}, **layout)
    return fig


# ------------------------------------------------------------------ list

def models_grid(models: list[dict]) -> html.Div:
    rows = [{"name": m["name"], "task": m["task"], "latest_version": m["latest_version"],
             "versions": ", ".join(m["versions"]), "estimator": m["estimator"],
             "predictions": m["predictions"],
             "metric": LABELS.get((m["headline"] or {}).get("name"), "—"),
             "value": (m["headline"] or {}).get("value")} for m in models]
    columns = [{"field": "name", "headerName": "Model", "minWidth": 120},
               {"field": "task", "headerName": "Task"},
               {"field": "latest_version", "headerName": "Latest version"},
               {"field": "versions", "headerName": "Versions"},
               {"field": "estimator", "headerName": "Estimator", "minWidth": 160},
               _num("predictions", "Predictions (24 h)",
                    {"function": "d3.format(',')(params.value)"}),
               {"field": "metric", "headerName": "Headline metric"},
               _num("value", "Value (eval)")]
    return _grid(MODELS_GRID, rows, columns, "No model registered yet: call "
                 "monitor.ml.register(...) in the monitored app", page_size=10)


# ----------------------------------------------------------------- cards

def metric_cards(result: dict, preds: dict, drift: dict) -> html.Div:
    """Headline metrics of the shown source, plus volume and drift."""
    m = result.get("metrics") or {}
    keys = svc.HISTORY_METRICS[result["task"]]
    source = "evaluation data" if result["source"] == "eval" else "labelled live predictions"
    cards = []
    for key in keys:
        value = m.get(key)
        shown = round(value, 4) if isinstance(value, float) else value
        cards.append(metric_card(LABELS[key], shown, id=f"models-card-{key}",
                                 status="ok" if value is not None else "muted",
                                 footnote=f"{m.get('n', 0):,} rows · {source}"
                                 if m else result.get("message")))
    cards.append(metric_card(
        "Predictions", preds["total"], id="models-card-predictions", icon="activity",
        footnote=f"{preds['labelled']:,} labelled · p95 "
                 + (f"{preds['latency_ms_p95']:.2f} ms" if preds["latency_ms_p95"] is not None
                    else "—")))
    n_drift = drift.get("drifted", 0)
    cards.append(metric_card(
        "Drifted features", n_drift, id="models-card-drift", icon="shuffle",
        status="warn" if n_drift else ("ok" if drift.get("n_live", 0) >= svc.DRIFT_MIN_SAMPLES
                                       else "muted"),
        footnote=drift.get("message") or f"of {len(drift.get('features', []))} · "
                                         f"{drift.get('n_live', 0):,} live inputs"))
    return metric_grid(cards)


# ---------------------------------------------------------------- charts

def versions_figure(hist: dict) -> go.Figure:
    """Metrics per evaluation, in registration order, labelled by version: a
    regression between versions shows as a step down."""
    ev = hist["evaluations"]
    if not ev:
        return empty_figure("No evaluation yet: register with X_eval and y_eval")
    fig = figure()
    x = [f"v{e['version']}<br>{e['time'][5:16].replace('T', ' ')}" for e in ev]
    for key in hist["metrics"]:
        fig.add_scatter(x=x, y=[e[key] for e in ev], mode="lines+markers",
                        name=LABELS[key], customdata=[e["n"] for e in ev],
                        hovertemplate="%{y:.4f} on %{customdata} rows<extra></extra>")
    fig.update_xaxes(type="category")
    return _margins(fig, hovermode="x unified")


def live_history_figure(hist: dict) -> go.Figure:
    """Live metrics of labelled predictions per time bucket and version."""
    if not hist["live"]:
        return empty_figure("No labelled predictions yet: pass y_true to record() "
                            "or call label() later")
    fig = figure()
    keys = [k for k in hist["metrics"] if k in ("accuracy", "precision", "recall", "r2",
                                                  "mae")]
    for version in sorted({r["version"] for r in hist["live"]}):
        live = [r for r in hist["live"] if r["version"] == version]
        for key in keys:
            fig.add_scatter(x=[r["time"] for r in live], y=[r[key] for r in live],
                            mode="lines+markers", name=f"{LABELS[key]} · v{version}",
                            customdata=[r["n"] for r in live],
                            hovertemplate="%{y:.4f} · %{customdata} labels<extra></extra>")
    fig.update_xaxes(range=[hist["since"], hist["until"]])
    return _margins(fig, hovermode="x unified")


def volume_figure(preds: dict) -> go.Figure:
    if not preds["volume"]:
        return empty_figure("No predictions in this window")
    fig = figure()
    for version in sorted({v["version"] for v in preds["volume"]}):
        rows = [v for v in preds["volume"] if v["version"] == version]
        fig.add_bar(x=[r["time"] for r in rows], y=[r["count"] for r in rows],
                    name=f"v{version}")
    lat = [v for v in preds["volume"] if v["latency_ms_p95"] is not None]
    if lat:
        fig.add_scatter(x=[r["time"] for r in lat], y=[r["latency_ms_p95"] for r in lat],
                        name="p95 latency (ms)", yaxis="y2", mode="lines+markers")
    fig.update_xaxes(range=[preds["since"], preds["until"]])
    return _margins(fig, barmode="stack", yaxis={"title": "predictions", "rangemode": "tozero"},
                    yaxis2={"title": "ms", "overlaying": "y", "side": "right",
                            "rangemode": "tozero", "showgrid": False})


def distribution_figure(preds: dict) -> go.Figure:
    dist = preds["distribution"]
    if not dist["counts"]:
        return empty_figure("No predictions in this window")
    fig = figure()
    if dist["kind"] == "classes":
        fig.add_bar(x=[str(v) for v in dist["labels"]], y=dist["counts"], name="predictions")
        fig.update_xaxes(type="category", title="predicted class")
    else:
        edges = dist["edges"]
        fig.add_bar(x=[(a + b) / 2 for a, b in zip(edges, edges[1:])], y=dist["counts"],
                    width=[b - a for a, b in zip(edges, edges[1:])], name="predictions")
        fig.update_xaxes(title="predicted value")
    return _margins(fig, showlegend=False, yaxis={"title": "count"})


def confusion_figure(metrics: dict | None) -> go.Figure:
    cm = (metrics or {}).get("confusion_matrix")
    if not cm:
        return empty_figure("No confusion matrix: nothing scored")
    labels = [str(v) for v in cm["labels"]]
    fig = figure()
    fig.add_heatmap(z=cm["matrix"], x=labels, y=labels, colorscale="Blues",
                    text=cm["matrix"], texttemplate="%{text}", showscale=False,
                    hovertemplate="true %{y} · predicted %{x}: %{z}<extra></extra>")
    fig.update_xaxes(title="predicted", type="category")
    fig.update_yaxes(title="true", type="category", autorange="reversed")
    return _margins(fig)


def _curves_figure(curves: list[dict], x: str, y: str, score: str, score_label: str,
                   empty: str, chance: bool = False) -> go.Figure:
    """One line per class (one-vs-rest) on a unit square."""
    if not curves:
        return empty_figure(empty)
    fig = figure()
    if chance:
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                        line={"dash": "dash", "width": 1}, hoverinfo="skip")
    for c in curves:
        fig.add_scatter(x=c[x], y=c[y], mode="lines",
                        name=f"{c['label']} ({score_label} {c[score]:.3f})")
    fig.update_xaxes(title=x.replace("fpr", "false positive rate"), range=[0, 1])
    fig.update_yaxes(title=y.replace("tpr", "true positive rate"), range=[0, 1.02])
    return _margins(fig)


def roc_figure(metrics: dict | None) -> go.Figure:
    return _curves_figure((metrics or {}).get("roc_curves") or [], "fpr", "tpr", "auc",
                          "AUC", "ROC needs class probabilities (evaluation data)",
                          chance=True)


def pr_figure(metrics: dict | None) -> go.Figure:
    return _curves_figure((metrics or {}).get("pr_curves") or [], "recall", "precision",
                          "average_precision", "AP",
                          "Precision-recall needs class probabilities (evaluation data)")


def residuals_figure(metrics: dict | None) -> go.Figure:
    res = (metrics or {}).get("residuals")
    if not res or not res["y_pred"]:
        return empty_figure("No residuals: nothing scored")
    fig = figure()
    fig.add_scatter(x=res["y_pred"], y=res["residual"], mode="markers", name="residual",
                    marker={"size": 6, "opacity": 0.7},
                    hovertemplate="predicted %{x:.3f} · residual %{y:.3f}<extra></extra>")
    fig.add_hline(y=0, line_dash="dash", line_width=1)
    fig.update_xaxes(title="predicted")
    fig.update_yaxes(title="true − predicted")
    return _margins(fig, showlegend=False)


def actual_vs_predicted_figure(metrics: dict | None) -> go.Figure:
    res = (metrics or {}).get("residuals")
    if not res or not res["y_pred"]:
        return empty_figure("Nothing scored")
    lo = min(min(res["y_true"]), min(res["y_pred"]))
    hi = max(max(res["y_true"]), max(res["y_pred"]))
    fig = figure()
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect",
                    line={"dash": "dash", "width": 1}, hoverinfo="skip")
    fig.add_scatter(x=res["y_true"], y=res["y_pred"], mode="markers", name="rows",
                    marker={"size": 6, "opacity": 0.7})
    fig.update_xaxes(title="true")
    fig.update_yaxes(title="predicted")
    return _margins(fig, showlegend=False)


def importance_figure(features: dict, top: int = 15) -> go.Figure:
    rows = (features.get("importance") or [])[:top]
    if not rows:
        return empty_figure(features.get("message") or "No feature importance")
    rows = rows[::-1]  # largest at the top of a horizontal bar chart
    fig = figure()
    errors = [r["std"] for r in rows]
    fig.add_bar(x=[r["importance"] for r in rows], y=[r["feature"] for r in rows],
                orientation="h", name="importance",
                error_x={"type": "data", "array": errors} if any(
                    e is not None for e in errors) else None)
    fig.update_yaxes(type="category", automargin=True)
    fig.update_xaxes(title=features.get("method") or "importance")
    return _margins(fig, showlegend=False,
                    height=max(260, 22 * len(rows) + 80))


# ----------------------------------------------------------------- tables

def drift_grid(drift: dict) -> html.Div:
    rows = [{**r, "status": "drifted" if r["drifted"] else
             ("ok" if r["enough_data"] else "too few inputs")}
            for r in drift.get("features", [])]
    columns = [{"field": "feature", "headerName": "Feature", "minWidth": 140},
               {"field": "status", "headerName": "Status", "minWidth": 110,
                "cellClassRules": {"text-danger fw-semibold": "params.value == 'drifted'"}},
               _num("psi", "PSI"), _num("psi_noise", "PSI noise"),
               _num("ks_statistic", "KS statistic"),
               _num("ks_pvalue", "KS p-value", _PVALUE),
               _num("reference_mean", "Eval mean"), _num("live_mean", "Live mean"),
               _num("n_live", "Live n", {"function": "d3.format(',')(params.value)"})]
    return _grid(DRIFT_GRID, rows, columns,
                 drift.get("message") or "No live inputs in this window", page_size=10)


def per_class_grid(metrics: dict | None) -> html.Div:
    rows = (metrics or {}).get("per_class") or []
    columns = [{"field": "label", "headerName": "Class"}, _num("precision", "Precision"),
               _num("recall", "Recall"), _num("f1", "F1"),
               _num("support", "Support", {"function": "d3.format(',')(params.value)"})]
    return _grid(PER_CLASS_GRID, rows, columns, "Nothing scored", page_size=10)


def compare_grid(cmp: dict | None) -> html.Div:
    """Two versions side by side; the change is coloured by better/worse."""
    if cmp is None:
        return html.P("Choose a second version to compare.", className="text-muted mb-0",
                      id="models-compare-note")
    rows = []
    for r in cmp["rows"]:
        better = None
        if r["change"] is not None and r["change"] != 0:
            better = (r["change"] > 0) == HIGHER_IS_BETTER.get(r["metric"], True)
        rows.append({"metric": LABELS[r["metric"]], "a": r["a"], "b": r["b"],
                     "change": r["change"],
                     "verdict": "—" if better is None else "better" if better else "worse"})
    a, b = cmp["a"]["version"], cmp["b"]["version"]
    columns = [{"field": "metric", "headerName": "Metric", "minWidth": 140},
               _num("a", f"v{a}"), _num("b", f"v{b}"), _num("change", "Change", _SIGNED),
               {"field": "verdict", "headerName": f"v{b} vs v{a}",
                "cellClassRules": {"text-danger fw-semibold": "params.value == 'worse'",
                                   "text-success fw-semibold": "params.value == 'better'"}}]
    return _grid(COMPARE_GRID, rows, columns, "No evaluation metrics to compare")


def version_options(versions: list[str]) -> list[dict[str, Any]]:
    return [{"label": f"v{v}", "value": v} for v in reversed(versions)]
