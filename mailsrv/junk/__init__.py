"""Per-account Bayesian junk filter.

How it decides (docs/junk.md has the long form):
- A message becomes a set of tokens (``tokens.py``): words and word pairs of the visible text (text/plain and
  the visible text of text/html), words of the Subject and the From display name, and a few header facts
  (sender domain, link hosts, charsets, mailer). Each token counts once per message.
- The account's database (``worddb.py``, SQLite in WAL mode beside the account's index) keeps, per token, how
  many ham and how many spam messages contained it, and the two message totals. Training adds one to each of a
  message's tokens for its class and remembers which class it was trained as; untraining subtracts exactly that,
  so train followed by untrain restores every count.
- ``classify.py`` turns each token's counts into a probability with Robinson's correction toward a prior (a
  token seen twice is weak evidence), keeps the most significant ones, and combines them with Fisher's
  chi-square method (as bogofilter does): a score in [0, 1], junk above the account's threshold.

Cost is bounded: the text looked at per message, the tokens per message and the length of a token all have
caps, so a 5 MB message or one enormous "word" classifies in bounded time and memory.
"""
