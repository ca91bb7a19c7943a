#!/usr/bin/env python3
"""Writes data/p1.txt .. data/p4.txt: a few thousand made-up words each,
drawn with a skewed (Zipf-like) frequency so that the word counts are
interesting. Seeded, so running it again gives the same files."""

import os
import random

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu",
             "bri", "dan", "fel", "gor", "hip", "jun", "kel", "mar"]
WORDS_PER_LINE = 12


def main():
    rng = random.Random(20240601)
    vocab = sorted({"".join(rng.choice(SYLLABLES)
                            for _ in range(rng.randint(1, 3)))
                    for _ in range(900)})
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    rng.shuffle(weights)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "data"), exist_ok=True)
    for part in range(1, 5):
        words = rng.choices(vocab, weights, k=3000 + 250 * part)
        lines = [" ".join(words[i:i + WORDS_PER_LINE])
                 for i in range(0, len(words), WORDS_PER_LINE)]
        with open(os.path.join(here, "data", f"p{part}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
