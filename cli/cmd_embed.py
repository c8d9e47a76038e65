"""`fairaudit embed`: speaker embeddings from the audio files of a manifest (GE2E, Resemblyzer)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import common as c
from .guards import checked
from .app import app


@app.command("embed")
@c.user_errors
@checked(out="file")
def embed(
    manifest: Annotated[str, typer.Argument(help="CSV/TSV/JSONL/Parquet table (utt_id, speaker_id, audio path), Kaldi wav.scp (with --utt2spk) or NeMo manifest.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output Parquet: speaker_id, embedding (list<float32>), n_utterances. Unreadable audio is listed in the same name with .json.")] = "embeddings.parquet",
    audio_col: Annotated[str, typer.Option("--audio-col", help="Audio path column of a table manifest.")] = "audio_path",
    utt_col: c.UttCol = "utt_id", speaker_col: c.SpeakerCol = "speaker_id", utt2spk: c.Utt2spk = None,
    input_format: Annotated[Optional[str], typer.Option("--input-format", help="Override the manifest format: csv|tsv|jsonl|parquet|kaldi|nemo.")] = None,
    utterances_out: Annotated[Optional[str], typer.Option("--utterances-out", help="Also write per-utterance embeddings (Parquet: utt_id, speaker_id, embedding).")] = None,
    min_seconds: Annotated[float, typer.Option("--min-seconds", help="Less speech than this (seconds, after silence trimming) counts as too short or silent.")] = 0.5,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes (default: 1 for fewer than 1000 utterances, else all cores).")] = None,
    quiet: c.Quiet = False,
):
    """Speaker embeddings from audio, for `fairaudit audit --embeddings`."""
    from fairaudit import embed as E

    E.require_embed_extra()
    frame = E.read_manifest(manifest, input_format, audio_col=audio_col, utt_col=utt_col,
                            speaker_col=speaker_col, utt2spk=utt2spk)
    todo = int(frame["reason"].isna().sum())
    with c.progress_bar("embedding", todo, not quiet) as progress:
        result = E.embed_manifest(frame, workers=workers, min_seconds=min_seconds, progress=progress)
    side = E.write_embeddings(result, out, utterances_out=utterances_out, manifest=manifest)
    if not quiet:
        info = result.info
        line = (f"embed: {info['speakers']} speakers from {info['embedded']} of {info['utterances']} utterances "
                f"-> {out}")
        un = info["unreadable"]
        if un["count"]:
            reasons = ", ".join(f"{n} {r}" for r, n in un["by_reason"].items())
            line += f"; {un['count']} not embedded ({reasons}), listed in {side}"
        c.out_console.print(line, markup=False)
