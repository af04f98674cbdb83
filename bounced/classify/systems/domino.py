"""HCL (IBM, Lotus) Domino / Notes: its directory's wordings (a user not listed in it,
in English, French and Japanese; several entries matching), and its refusal to route
mail to a user (the recipient's own restriction)."""

from bounced.classify.systems import System

SYSTEM = System(
    name="domino",
    phrases=(
        ("filtered/recipient", ("cannot route mail to user",)),
        ("userunknown", ("not listed in domino directory", "not listed in public name",
                         "non répertorié dans l'annuaire", "ディレクトリには見つかりません",
                         "ディレクトリのリストにありません", "in name directory")),
        ("systemerror", ("several matches found in domino directory",)),
    ),
)
