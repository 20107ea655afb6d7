"""Retention commands: forget (by policy and budget), prune (plan, then execute), config."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from reprocas.cli.common import JsonOpt, open_repo, progress_bar
from reprocas.cli.completion import complete_dataset
from reprocas.cli.output import emit_json, human_bytes, plural, stored_parts_text

config_app = typer.Typer(help="Repository settings (retention.*, prompt.*).", no_args_is_help=True)


def forget(
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Only this dataset (repeatable).",
            autocompletion=complete_dataset,
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help="Only versions of this kind: dataset, environment, run-output."
        ),
    ] = None,
    keep_last: Annotated[int | None, typer.Option("--keep-last", help="Keep the N newest.")] = None,
    keep_hourly: Annotated[
        int | None,
        typer.Option(
            "--keep-hourly",
            help="Keep the newest version of each of the last N hours that have one.",
        ),
    ] = None,
    keep_daily: Annotated[
        int | None,
        typer.Option(
            "--keep-daily", help="Keep the newest version of each of the last N days that have one."
        ),
    ] = None,
    keep_weekly: Annotated[
        int | None,
        typer.Option(
            "--keep-weekly",
            help="Keep the newest version of each of the last N weeks that have one.",
        ),
    ] = None,
    keep_monthly: Annotated[
        int | None,
        typer.Option(
            "--keep-monthly",
            help="Keep the newest version of each of the last N months that have one.",
        ),
    ] = None,
    keep_yearly: Annotated[
        int | None,
        typer.Option(
            "--keep-yearly",
            help="Keep the newest version of each of the last N years that have one.",
        ),
    ] = None,
    keep_within: Annotated[
        str | None, typer.Option("--keep-within", help="Keep versions newer than e.g. 7d, 1y6m.")
    ] = None,
    keep_tag: Annotated[
        list[str] | None,
        typer.Option("--keep-tag", help="Also protect versions with this tag (repeatable)."),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="Forget oldest unprotected versions until the store "
            "after pruning fits: 50GB, 500MiB or bytes. Alone (no --keep-* and no stored "
            "rules) it forgets only what the budget needs, oldest first, and nothing when "
            "the store already fits.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and print; change nothing.")
    ] = False,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Decide which versions to keep, and forget the others (their bytes go at prune).

    Always kept: the latest version of each dataset, versions tagged `published` (or a
    --keep-tag), versions a recorded run used, produced or ran in (the reason names the
    run). Without rule options, the policy stored with
    `reprocas config set retention.…` applies. Exit code 9 when the budget cannot be met.
    """
    from reprocas.retention import config as cfg
    from reprocas.retention.forget import BudgetNotMetError
    from reprocas.retention.policy import Policy, Rules, parse_duration, parse_size
    from reprocas.store.accounting import stored_parts

    counts = (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    size = parse_size(budget) if budget is not None else None
    with open_repo() as repo:
        stored, mu = cfg.policy_from_config(repo.store)
        if any(n is not None for n in counts) or keep_within is not None:
            policy = Policy(
                rules=Rules(
                    *counts,
                    keep_within_ns=parse_duration(keep_within) if keep_within else None,
                    keep_tags=tuple(keep_tag or ()),
                ),
                budget=size,
            )
        else:
            policy = Policy(
                rules=stored.rules if not keep_tag else _with_tags(stored.rules, keep_tag),
                per_dataset=stored.per_dataset,
                budget=size if size is not None else stored.budget,
            )
        stored_before = stored_parts(repo.root)
        result = repo.forget(
            policy,
            datasets=tuple(dataset or ()),
            kinds=tuple(kind or ()),
            dry_run=dry_run,
            max_unused=mu,
        )
    d = result.decision
    stored_after = stored_before.after_freeing(d.freed_bytes or 0)
    if as_json:
        emit_json(
            {
                **result.to_json(),
                "stored_before": stored_before.to_json(),
                "stored_after": stored_after.to_json(),
            }
        )
    else:
        for r in sorted((*d.keep, *d.remove), key=lambda r: (r.dataset, r.number)):
            verb = "keep  " if r in d.keep else "forget"
            typer.echo(f"{verb} {r.ref:<28} {', '.join(d.reasons[r.id])}")
        if d.freed_bytes is not None:
            typer.echo(
                f"{len(d.remove)} to forget, {len(d.keep)} kept; after prune the store "
                f"goes from {human_bytes(stored_before.total)} to "
                f"{human_bytes(stored_after.total)} (frees {d.freed_bytes} bytes)"
            )
            typer.echo(
                f"  stored {stored_parts_text(stored_before)}; packs after prune "
                f"{human_bytes(stored_after.packs)}"
            )
        for s in result.skipped:
            typer.echo(f"kept {s}: it changed since the decision (a tag or a ref moved)")
        if dry_run:
            typer.echo("dry run: nothing forgotten")
    if not d.budget_met:
        raise BudgetNotMetError(
            f"the budget of {d.budget} bytes cannot be met: protected versions alone need "
            f"{d.size_after} bytes after pruning"
            + ("" if dry_run else "; the unprotected versions were forgotten")
        )


def _with_tags(rules: Any, tags: list[str]) -> Any:
    from dataclasses import replace

    return replace(rules, keep_tags=tuple(rules.keep_tags) + tuple(tags))


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; delete nothing.")
    ] = False,
    max_unused: Annotated[
        str | None,
        typer.Option("--max-unused", help="Repack packs more than PCT% unused (default 10)."),
    ] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Delete packs no kept version needs; repack packs that are mostly unused.

    Prints the plan first. Safe while others commit; a killed prune leaves a sound
    repository and the next prune finishes the job.
    """
    from reprocas.retention import config as cfg

    with open_repo() as repo:
        mu: float | None = (
            cfg.parse_max_unused(max_unused)
            if max_unused is not None
            else cfg.policy_from_config(repo.store)[1]
        )
        plan = repo.prune_plan(max_unused=mu)
        if not as_json:
            for s in plan.delete:
                typer.echo(f"delete {s.pack.hex()[:16]}  {human_bytes(s.size):>10}")
            for s in plan.repack:
                typer.echo(
                    f"repack {s.pack.hex()[:16]}  {human_bytes(s.size):>10} -> "
                    f"{human_bytes(s.new_size)}"
                )
            typer.echo(
                f"plan: delete {len(plan.delete)} packs, repack {len(plan.repack)}, "
                f"free {plan.freed_bytes} bytes ({human_bytes(plan.freed_bytes)})"
                + (f", plus {plan.garbage_bytes} bytes of leftovers" if plan.garbage else "")
            )
            _print_repack_threshold(plan)
        with progress_bar("repacking", not as_json, unit="pack") as bar:
            report = None if dry_run else plan.execute(progress=bar)
    if as_json:
        out: dict[str, Any] = {"plan": plan.to_json(), "dry_run": dry_run}
        out["freed_bytes"] = report.freed_bytes if report else plan.freed_bytes
        if report is not None:
            out["result"] = report.to_json()
        emit_json(out)
    elif report is not None:
        typer.echo(
            f"pruned: deleted {len(report.deleted)} packs, repacked {len(report.repacked)}, "
            f"freed {report.freed_bytes} bytes ({human_bytes(report.freed_bytes)})"
        )
        if report.spared:
            typer.echo(
                f"{len(report.spared)} packs were spared: commits made meanwhile use them "
                "(the next prune takes them)"
            )
        if report.leased:
            typer.echo(
                f"{len(report.leased)} packs ({human_bytes(report.leased_bytes)}) were left "
                f"on disk: {report.leased_readers} readers that started before the prune "
                "still read them (the next prune or gc removes them)"
            )


def _print_repack_threshold(plan: Any) -> None:
    """The repack threshold, and the packs it leaves alone, so the plan explains itself."""
    min_bytes, share = plan.model.min_free
    parts = [f"{share * 100:g}% of the pack"] if share else []
    parts += [f"{human_bytes(min_bytes)}"] if min_bytes else []
    threshold = " and ".join(parts) or "any unused byte"
    skipped = plan.model.not_worth_repacking()
    line = f"repack threshold: frees at least {threshold} (retention.repack-min-free)"
    if skipped:
        unused = sum(d for _, d in skipped)
        line += (
            f"; {plural(len(skipped), 'pack')} with {human_bytes(unused)} unused left as "
            "they are: repacking would not pay"
        )
    typer.echo(line)


DatasetOpt = typer.Option(
    "--dataset", "-d", help="The setting of one dataset.", autocompletion=complete_dataset
)


@config_app.command("set")
def config_set(
    key: Annotated[
        str, typer.Argument(help="retention.keep-daily, retention.budget, remote.cache-size, …")
    ],
    value: Annotated[str, typer.Argument(help="The value, e.g. 7, 30d, 50GB, 5%.")],
    dataset: Annotated[str | None, DatasetOpt] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Store a setting in the repository config."""
    from reprocas.remote import config as rconf
    from reprocas.retention import config as cfg

    with open_repo() as repo:
        if key.startswith("prompt."):
            from reprocas.prompts import settings

            stored: Any = settings.set_value(repo.store, key, value)
        elif key.startswith("remote."):
            stored = rconf.set_setting(repo.store, key, value)
        else:
            stored = cfg.set_value(repo.store, key, value, dataset)
    if as_json:
        emit_json({"key": key, "dataset": dataset, "value": stored})
    else:
        typer.echo(f"{key}{f' ({dataset})' if dataset else ''} = {stored}")


@config_app.command("get")
def config_get(
    key: Annotated[str, typer.Argument()],
    dataset: Annotated[str | None, DatasetOpt] = None,
    as_json: Annotated[bool, JsonOpt] = False,
) -> None:
    """Print one setting (exit code 4 when it is not set)."""
    from reprocas.errors import NotFoundError
    from reprocas.remote import config as rconf
    from reprocas.retention import config as cfg

    with open_repo() as repo:
        if key.startswith("prompt."):
            from reprocas.prompts import settings

            value: Any = settings.get_value(repo.store, key)
        elif key.startswith("remote."):
            value = rconf.get_setting(repo.store, key)
        else:
            value = cfg.get_value(repo.store, key, dataset)
    if value is None:
        raise NotFoundError(f"{key} is not set")
    if as_json:
        emit_json({"key": key, "dataset": dataset, "value": value})
    else:
        typer.echo(value if not isinstance(value, list) else ",".join(value))


@config_app.command("show")
def config_show(as_json: Annotated[bool, JsonOpt] = False) -> None:
    """Print every retention setting."""
    from reprocas.prompts import settings
    from reprocas.retention import config as cfg

    with open_repo() as repo:
        ret = cfg.load(repo.store)
        prompt = settings.show(repo.store)
        stored_prompt = settings.load(repo.store)
    if as_json:
        emit_json({"retention": ret, "prompt": prompt})
        return
    for k, v in sorted(stored_prompt.items()):
        typer.echo(f"prompt.{k} = {v}")
    if not ret["default"] and not ret["datasets"] and not stored_prompt:
        typer.echo("no settings stored: the defaults apply (docs/CLI.md, Settings)")
    for k, v in sorted(ret["default"].items()):
        typer.echo(f"retention.{k} = {v}")
    for name, sec in sorted(ret["datasets"].items()):
        for k, v in sorted(sec.items()):
            typer.echo(f"retention.{k} = {v}  (dataset {name})")


config_app.command("list", help="Print every retention setting (the same as `show`).")(config_show)


@config_app.command("unset")
def config_unset(
    key: Annotated[str, typer.Argument()],
    dataset: Annotated[str | None, DatasetOpt] = None,
) -> None:
    """Remove a setting."""
    from reprocas.remote import config as rconf
    from reprocas.retention import config as cfg

    with open_repo() as repo:
        if key.startswith("prompt."):
            from reprocas.prompts import settings

            settings.unset_value(repo.store, key)
        elif key.startswith("remote."):
            rconf.unset_setting(repo.store, key)
        else:
            cfg.unset_value(repo.store, key, dataset)
