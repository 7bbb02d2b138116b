from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import org_view, staff_view
from quotas.limits import SIZE_QUOTAS
from usage.charts import bar_chart, line_chart
from usage.selectors import usage_all_organizations, usage_overview

QUOTA_LABELS = {
    "bytes": "Stored bytes",
    "artifacts": "Artifacts",
    "largest": "Largest artifact",
    "sandboxes": "Running sandboxes",
}


def _quota_rows(quotas: list[tuple[str, int, int | None]]) -> list[dict[str, Any]]:
    rows = []
    for name, used, limit in quotas:
        if name == "largest":
            continue
        share = min(used / limit, 1.0) if limit else None
        rows.append(
            {
                "name": name,
                "label": QUOTA_LABELS.get(name, name),
                "used": used,
                "limit": limit,
                "is_size": name in SIZE_QUOTAS,
                "percent": round(100 * used / limit) if limit else None,
                "bar": round(100 * share, 2) if share is not None else 0,
                "level": "full" if share is not None and share >= 1 else "near" if share and share >= 0.8 else "",
            }
        )
    return rows


@org_view()
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    overview = usage_overview(organization=request.organization)
    context = {
        "overview": overview,
        "stored_chart": line_chart([(day, stored) for day, stored, _ in overview.history]),
        "prefix_chart": bar_chart(overview.by_prefix),
        "sandbox_chart": None if overview.by_sandbox is None else bar_chart(overview.by_sandbox),
        "type_chart": None if overview.by_content_type is None else bar_chart(overview.by_content_type),
        "quota_rows": _quota_rows(overview.quotas),
    }
    return render(request, "usage/usage_page.html", context)


@staff_view
@require_GET
def usage_all(request: HttpRequest) -> HttpResponse:
    rows = usage_all_organizations()
    peak = max((row.stored_bytes for row in rows), default=0)
    organizations = [
        {
            "row": row,
            "bar": round(100 * row.stored_bytes / peak, 2) if peak else 0,
            "share": round(100 * row.stored_bytes / row.bytes_limit) if row.bytes_limit else None,
            "line": line_chart(row.history),
        }
        for row in rows
    ]
    return render(request, "usage/usage_all.html", {"organizations": organizations})
