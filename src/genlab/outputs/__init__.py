"""What genlab writes: every sample that leaves a model goes through one of these writers.

    images.py       PNG grids, .npz arrays, folders of PNGs
    text.py         .txt and .jsonl samples
    audio.py        WAV files, waveform .npz, spectrogram grids (Griffin-Lim back to sound)
    provenance.py   how an output was made, inside it (PNG text chunks); data: URIs

They sit under the models and the trainer (which writes sample grids as it trains), so any
layer above may write an output the same way.
"""
