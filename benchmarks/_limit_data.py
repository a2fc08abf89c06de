"""A LIMIT-style combinatorial retrieval set (Weller et al. 2025, "On the Theoretical Limitations of
Embedding-Based Retrieval"), generated deterministically from a seed and written in BEIR format.

Every document lists the same number of attributes ("Ana Berg likes quokkas, jazz, ..., and apples.");
every query asks for one or two of them ("Who likes quokkas?", "Who likes quokkas and jazz?"); a document is
relevant exactly when it lists every attribute the query names (set membership, grade 1).

The hard, dense-qrel part is LIMIT's: a *core* of `core` documents in which each pair (i, j) shares one
attribute that no other document lists, and the one-attribute query for it has exactly {i, j} as its
relevant set, so every one of the C(core, 2) pairs is the answer of some query (LIMIT: 46 core documents,
1,035 pairs, of which it keeps 1,000). Two-attribute *conjunction* queries combine the pair attributes of
(i, k) and (j, k): only k lists both, while i and j each list one of them (hard partial matches). The other
`docs - core` documents are distractors that list only filler attributes, which no query asks for.

The attribute vocabulary is the fixed word list below (single English words whose English-Snowball stems
are all distinct, so a BM25 term is exactly one attribute); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from itertools import combinations
from math import comb
from pathlib import Path


def _words(block: str) -> tuple[str, ...]:
    return tuple(block.split())


# Attributes: animals, plants, foods, music, sports and hobbies, objects, places, materials, subjects, people.
ATTRIBUTES = _words("""
quokkas otters badgers beavers camels cheetahs dolphins elephants ferrets gazelles giraffes hamsters hedgehogs
hippos hyenas iguanas jaguars kangaroos koalas lemurs leopards lions llamas lynxes meerkats moles mongooses moose
narwhals ocelots orangutans pandas panthers penguins platypuses porcupines possums pumas rabbits raccoons reindeer
rhinos seals skunks sloths squirrels tapirs tigers walruses weasels wolves wombats yaks zebras bison buffaloes
chipmunks coyotes donkeys foxes gerbils goats gorillas horses jackals lambs manatees minks mules ponies sheep
armadillos anteaters baboons chimpanzees alpacas antelopes bats bears cats dogs cows pigs mice rats deer elk whales
sharks octopuses squids crabs lobsters shrimps oysters clams jellyfish starfish snails slugs worms frogs toads newts
salamanders turtles tortoises lizards snakes pythons cobras crocodiles alligators geckos chameleons parrots owls
eagles hawks falcons pigeons doves sparrows robins crows ravens magpies swans geese ducks herons storks flamingos
pelicans puffins toucans peacocks ostriches emus hummingbirds woodpeckers kingfishers vultures albatrosses seagulls
canaries finches wrens larks nightingales cockatoos macaws turkeys chickens quails pheasants partridges bees wasps
ants beetles butterflies moths dragonflies grasshoppers ladybugs fireflies termites mosquitoes cicadas mantises
scorpions spiders centipedes salmon trout tuna cod haddock sardines anchovies mackerel herring carp catfish goldfish
eels halibut swordfish piranhas stingrays seahorses apples apricots avocados bananas blackberries blueberries
cherries coconuts cranberries dates figs grapes grapefruits guavas kiwis lemons limes lychees mangoes melons
nectarines oranges papayas peaches pears persimmons pineapples plums pomegranates raspberries strawberries
tangerines watermelons gooseberries mulberries quinces kumquats clementines passionfruit durians jackfruit rambutans
starfruit elderberries currants raisins prunes olives artichokes asparagus beets broccoli cabbages carrots
cauliflower celery cucumbers eggplants garlic kale leeks lettuce mushrooms onions parsnips peas peppers potatoes
pumpkins radishes spinach tomatoes turnips yams zucchini okra chard arugula shallots chickpeas lentils beans corn
rhubarb fennel watercress edamame jalapenos pancakes waffles croissants bagels muffins cookies brownies cupcakes
donuts pretzels crackers biscuits scones pies tarts cheesecake pudding custard gelato sorbet yogurt cereal oatmeal
granola porridge toast sandwiches burgers hotdogs pizza pasta lasagna spaghetti ravioli risotto paella sushi ramen
dumplings noodles tacos burritos nachos quesadillas enchiladas curry stew chili soup chowder goulash omelettes
crepes falafel hummus kebabs meatballs sausages bacon ham steak ribs popcorn chocolate caramel fudge marshmallows
licorice toffee nougat marzipan honey jam marmalade butter cheese mayonnaise mustard ketchup pickles salsa guacamole
tofu tempeh couscous quinoa rice bread baguettes tortillas pita focaccia brioche sourdough biryani tempura gnocchi
polenta tiramisu baklava churros macarons eclairs meringue fondue ratatouille borscht kimchi sauerkraut pierogi
samosas empanadas tamales gazpacho ceviche cheddar brie camembert gouda mozzarella parmesan feta gorgonzola
roquefort ricotta halloumi emmental cinnamon nutmeg ginger turmeric saffron paprika cumin coriander cardamom cloves
oregano basil thyme rosemary sage mint parsley dill vanilla wasabi horseradish tarragon coffee tea espresso
cappuccino lemonade cider beer wine champagne whiskey vodka gin rum tequila sake milkshakes smoothies cocoa kombucha
matcha soda almonds cashews peanuts pistachios walnuts hazelnuts pecans chestnuts macadamias acorns roses tulips
daisies lilies orchids sunflowers daffodils violets lavender jasmine magnolias peonies poppies marigolds carnations
irises hyacinths begonias geraniums dahlias chrysanthemums azaleas camellias hibiscus lotus ferns mosses cacti
succulents bamboo ivy clover thistles dandelions heather bonsai oaks maples pines birches willows cedars elms
redwoods sequoias palms baobabs cypresses spruces firs beeches poplars sycamores eucalyptus junipers hemlocks jazz
blues reggae opera hiphop techno disco punk folk gospel funk soul rap metal grunge ska bluegrass flamenco tango
waltz polka samba symphonies ballads lullabies madrigals sonatas concertos pianos guitars violins cellos flutes
clarinets trumpets trombones saxophones drums harps banjos ukuleles mandolins accordions harmonicas bagpipes oboes
bassoons tubas xylophones marimbas tambourines sitars organs synthesizers kazoos didgeridoos cymbals soccer football
basketball baseball tennis golf hockey rugby cricket volleyball badminton squash handball lacrosse polo archery
fencing rowing sailing surfing skiing snowboarding skating swimming diving cycling running hiking climbing boxing
wrestling judo karate taekwondo gymnastics bowling billiards darts curling triathlons marathons kayaking rafting
parkour yoga pilates jogging fishing hunting camping birdwatching gardening knitting sewing quilting crocheting
embroidery pottery painting drawing sculpture photography calligraphy origami woodworking carpentry baking cooking
chess checkers poker sudoku crosswords puzzles trivia karaoke dancing ballet juggling magic astronomy astrology
genealogy meditation journaling blogging podcasts gaming robotics programming stargazing beekeeping foraging
scrapbooking volunteering umbrellas lanterns candles clocks mirrors pillows blankets rugs curtains lamps kettles
teapots mugs spoons forks knives scissors hammers wrenches screwdrivers shovels rakes ladders buckets baskets
barrels bottles jars envelopes stamps postcards maps globes compasses telescopes microscopes binoculars cameras
radios televisions typewriters computers keyboards headphones speakers batteries magnets crystals fossils seashells
pebbles marbles dominoes dice kites balloons yoyos frisbees trampolines hammocks swings tents backpacks suitcases
wallets purses watches bracelets necklaces earrings rings brooches sunglasses scarves gloves mittens hats caps boots
sandals sneakers slippers socks sweaters jackets coats raincoats pajamas kimonos ponchos tuxedos ties belts buttons
zippers ribbons tapestries mosaics murals posters comics novels poems magazines newspapers dictionaries
encyclopedias atlases notebooks pencils crayons markers paintbrushes easels canvases bicycles motorcycles scooters
trains trams buses trucks tractors helicopters airplanes gliders rockets submarines yachts ferries gondolas
rickshaws limousines ambulances zeppelins sleds wagons carriages unicycles mountains rivers lakes oceans beaches
islands deserts forests jungles meadows valleys canyons caves glaciers volcanoes waterfalls swamps lagoons prairies
tundra savannas reefs fjords castles cathedrals temples pyramids lighthouses windmills bridges tunnels harbors
markets museums libraries theaters cinemas stadiums zoos aquariums parks farms vineyards orchards bakeries cafes
restaurants pubs casinos circuses carnivals festivals parades fireworks concerts picnics barbecues sunsets sunrises
rainbows thunderstorms snowflakes fog hurricanes tornadoes auroras eclipses comets planets galaxies nebulas meteors
moonlight italy france spain portugal greece egypt morocco kenya brazil argentina chile peru mexico canada japan
china india nepal tibet vietnam thailand korea mongolia iceland norway sweden finland denmark ireland scotland wales
poland hungary austria switzerland belgium holland croatia serbia romania bulgaria ukraine russia armenia iran iraq
israel lebanon syria ethiopia nigeria ghana senegal tanzania uganda zambia madagascar australia tasmania fiji samoa
tonga hawaii alaska texas california florida paris london rome venice florence berlin vienna prague budapest madrid
lisbon athens istanbul cairo tokyo kyoto seoul beijing shanghai mumbai delhi bangkok singapore sydney melbourne
toronto vancouver montreal chicago boston seattle denver miami havana lima bogota quito santiago crimson scarlet
turquoise teal indigo magenta beige ivory amber emeralds rubies sapphires diamonds pearls opals topaz jade garnets
amethysts onyx quartz granite copper bronze silver gold platinum titanium silk velvet linen wool cotton leather
denim lace satin cashmere tweed corduroy porcelain ceramics glass mathematics physics chemistry biology geology
history philosophy psychology linguistics archaeology anthropology economics architecture poetry literature
mythology theology botany zoology ecology geometry algebra calculus statistics cryptography oceanography meteorology
paleontology dinosaurs vampires zombies pirates ninjas wizards dragons unicorns mermaids fairies ghosts aliens
superheroes cowboys knights samurai vikings pharaohs gladiators mysteries thrillers westerns cartoons documentaries
musicals sitcoms anime manga sonnets haikus riddles jokes limericks proverbs pilots nurses farmers sailors painters
poets plumbers librarians astronauts firefighters detectives chefs jugglers clowns acrobats magicians architects
surgeons dentists lawyers marionettes puppets scarecrows snowmen igloos treehouses sandcastles gazebos greenhouses
cottages cabins chalets bungalows skyscrapers fountains statues monuments obelisks pagodas mosques chapels
monasteries abbeys palaces fortresses ruins catacombs toboggans catamarans schooners galleons hovercrafts blimps
monorails funiculars hedges croquet dodgeball hopscotch kickball softball snooker bobsleigh luge biathlons
decathlons javelins hurdles avalanches monsoons blizzards droughts earthquakes geysers hailstorms lightning
cupboards wardrobes armchairs sofas stools benches cradles chandeliers bookshelves dressers mandarins mangosteens
cantaloupes honeydews plantains tamarinds breadfruit loquats pumpernickel croutons sorghum barley oats millet
buckwheat rye spelt molasses syrup treacle hawthorns hollies laurels mistletoe rowans yews alders larches falconry
fletching blacksmithing glassblowing weaving spinning dyeing tanning brewing distilling canning skydiving
paragliding bungee spelunking snorkeling scuba windsurfing kitesurfing wakeboarding waterskiing harpsichords
clavichords glockenspiels lutes lyres zithers dulcimers ocarinas piccolos mozart beethoven bach chopin vivaldi
handel haydn brahms schubert verdi puccini shakespeare dickens tolstoy cervantes homer dante goethe moliere chekhov
kafka picasso rembrandt vermeer monet renoir degas cezanne matisse klimt dali wigwams yurts teepees barracudas
groupers marlins snappers tilapia perch pike ibises cranes egrets cormorants grebes loons plovers sandpipers terns
kestrels buzzards condors marmots lemmings voles shrews hares dormice pangolins aardvarks okapis wildebeests
warthogs gibbons capybaras chinchillas
""")
FIRST_NAMES = _words("""
Ana Ben Carla Dmitri Elena Farid Greta Hugo Ines Jonas Kira Luca Maya Nils Olga Pavel Quinn Rosa Sami Tara Umar Vera
Wendell Xenia Yusuf Zoe Aiko Bruno Chloe Dario Esme Felix Gia Hana Ivan Kofi Lena Milo Nora Omar Priya Rafael Sofia
Theo Uma Viktor Wanda Yara Zane Abel
""")
LAST_NAMES = _words("""
Abara Berg Castillo Dubois Eriksen Fischer Garcia Haddad Ito Jansen Kowalski Larsen Moreau Nakamura Okafor Petrov
Quintero Rossi Schmidt Tanaka Ueda Varga Weber Xu Yilmaz Zhou Alvarez Bauer Costa Dietrich Engel Ferreira Gruber
Horvat Iqbal Jovanovic Keller Lindqvist Mendes Novak Oliveira Pereira Reyes Silva Torres Urban Vogel Wagner Young
Zimmer
""")


@dataclass(frozen=True)
class LimitConfig:
    """Sizes of one generated set; `seed` alone decides every random choice."""

    docs: int = 1000  # documents in all: the core plus distractors
    attrs_per_doc: int = 50  # attributes every document lists
    core: int = 46  # documents whose every pair is some one-attribute query's relevant set
    conjunctions: int = 200  # two-attribute queries (one relevant core document, two partial matches)
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError (one line naming the parameter) when the sizes cannot be generated."""
        if self.core < 2:
            raise ValueError(f"core must be at least 2 documents, got {self.core}")
        if self.docs < self.core:
            raise ValueError(f"docs ({self.docs}) must be at least core ({self.core})")
        if self.attrs_per_doc < self.core - 1:
            raise ValueError(f"attrs_per_doc ({self.attrs_per_doc}) must be at least core - 1 = {self.core - 1}: "
                             "each core document lists one attribute per other core document")
        filler = len(ATTRIBUTES) - comb(self.core, 2)
        if filler < self.attrs_per_doc:
            raise ValueError(f"core {self.core} needs {comb(self.core, 2)} pair attributes plus {self.attrs_per_doc} "
                             f"filler attributes, but the word list has {len(ATTRIBUTES)} words")
        triples = comb(self.core, 2) * (self.core - 2)
        if not 0 <= self.conjunctions <= triples:
            raise ValueError(f"conjunctions must be between 0 and {triples} for core {self.core}, got {self.conjunctions}")


@dataclass
class LimitSet:
    """One generated set. Documents are in id order; `attrs[i]` is document i's attributes in listed order."""

    config: LimitConfig
    doc_ids: list[str]
    names: list[str]
    attrs: list[tuple[str, ...]]
    core_ids: list[str]  # the core documents' ids, in core order
    queries: dict[str, tuple[str, ...]]  # query id -> the attributes it asks for
    kinds: dict[str, str] = field(default_factory=dict)  # query id -> "pair" (one attribute) or "and" (two)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def doc_text(self, i: int) -> str:
        """The text of document i: "<name> likes a, b, ..., and z."."""
        a = self.attrs[i]
        listed = a[0] if len(a) == 1 else ", ".join(a[:-1]) + ", and " + a[-1]
        return f"{self.names[i]} likes {listed}."

    def query_text(self, qid: str) -> str:
        """The text of a query: "Who likes a?" or "Who likes a and b?"."""
        return "Who likes " + " and ".join(self.queries[qid]) + "?"


def parse_doc(text: str) -> tuple[str, ...]:
    """The attributes a document text lists (the inverse of `LimitSet.doc_text`)."""
    listed = text.split(" likes ", 1)[1].rstrip(".")
    return tuple(a.removeprefix("and ") for a in listed.split(", "))


def parse_query(text: str) -> tuple[str, ...]:
    """The attributes a query text asks for (the inverse of `LimitSet.query_text`)."""
    return tuple(text.removeprefix("Who likes ").rstrip("?").split(" and "))


def membership_qrels(doc_ids: list[str], attrs: list[tuple[str, ...]],
                     queries: dict[str, tuple[str, ...]]) -> dict[str, dict[str, int]]:
    """Relevance by exact set membership: a document is relevant (grade 1) iff it lists every query attribute."""
    listers: dict[str, set[int]] = {}
    for i, a in enumerate(attrs):
        for x in a:
            listers.setdefault(x, set()).add(i)
    out = {}
    for qid, q in queries.items():
        rel = set.intersection(*(listers.get(x, set()) for x in q))
        out[qid] = {doc_ids[i]: 1 for i in sorted(rel)}
    return out


def generate(config: LimitConfig) -> LimitSet:
    """Generate the set for `config` (deterministic: the same config gives the same set, byte for byte)."""
    config.check()
    rng = random.Random(config.seed)
    vocab = list(ATTRIBUTES)
    rng.shuffle(vocab)
    m = config.core
    pairs = list(combinations(range(m), 2))
    pair_attr = dict(zip(pairs, vocab[: len(pairs)]))
    filler = vocab[len(pairs):]
    # Core documents sit at random positions, so ids and file order say nothing about the core.
    positions = rng.sample(range(config.docs), m)
    core_at = dict(zip(positions, range(m)))
    attrs: list[tuple[str, ...]] = []
    for d in range(config.docs):
        c = core_at.get(d)
        own = [] if c is None else [pair_attr[p] for p in pairs if c in p]
        own += rng.sample(filler, config.attrs_per_doc - len(own))
        rng.shuffle(own)
        attrs.append(tuple(own))
    everyone = [f"{f} {s}" for f in FIRST_NAMES for s in LAST_NAMES]
    rng.shuffle(everyone)
    names = [everyone[d % len(everyone)] for d in range(config.docs)]
    doc_ids = [f"d{d:05d}" for d in range(config.docs)]

    queries: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for n, p in enumerate(rng.sample(pairs, len(pairs))):
        queries[f"p{n:04d}"], kinds[f"p{n:04d}"] = (pair_attr[p],), "pair"
    seen: set[tuple[int, int, int]] = set()
    while len(seen) < config.conjunctions:  # a triple: k is the answer, i and j each list one attribute
        k, i, j = rng.sample(range(m), 3)
        key = (k, min(i, j), max(i, j))
        if key in seen:
            continue
        seen.add(key)
        qid = f"c{len(seen) - 1:04d}"
        queries[qid], kinds[qid] = (pair_attr[(min(i, k), max(i, k))], pair_attr[(min(j, k), max(j, k))]), "and"
    qrels = membership_qrels(doc_ids, attrs, queries)
    core_ids = [doc_ids[d] for d in sorted(positions, key=core_at.__getitem__)]
    return LimitSet(config, doc_ids, names, attrs, core_ids, queries, kinds, qrels)


def write_beir(data: LimitSet, out: str | Path) -> Path:
    """Write `data` as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) plus SOURCE.md; returns it."""
    out = Path(out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(data.doc_ids):
            f.write(json.dumps({"_id": d, "title": "", "text": data.doc_text(i)}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid in data.queries:
            f.write(json.dumps({"_id": qid, "text": data.query_text(qid), "metadata": {"kind": data.kinds[qid]}}) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, rel in data.qrels.items():
            for d, g in rel.items():
                f.write(f"{qid}\t{d}\t{g}\n")
    (out / "SOURCE.md").write_text(_source_note(data, out), encoding="utf-8")
    return out


def _source_note(data: LimitSet, out: Path) -> str:
    c = data.config
    files = ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]
    digests = {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in files}
    n_pair = sum(k == "pair" for k in data.kinds.values())
    n_and = len(data.kinds) - n_pair
    pairs = sum(len(r) for r in data.qrels.values())
    args = (f"--docs {c.docs} --attrs {c.attrs_per_doc} --core {c.core} --conjunctions {c.conjunctions} "
            f"--seed {c.seed}")
    return "\n".join([
        "# LIMIT-style combinatorial set (generated, not downloaded)",
        "",
        "Made by `benchmarks/_limit_data.py` of slimvec, in the style of LIMIT (Weller et al. 2025, \"On the "
        "Theoretical Limitations of Embedding-Based Retrieval\"). Regenerate byte for byte with",
        "",
        f"    PYTHONPATH=src python benchmarks/limit.py --generate-only --out DIR {args}   # writes DIR/limit-...",
        "",
        f"Parameters: `{json.dumps(asdict(c))}`.",
        "",
        f"- {c.docs} documents, each listing {c.attrs_per_doc} attributes from a fixed word list of "
        f"{len(ATTRIBUTES)} single words (distinct English stems); {c.core} of them form the core.",
        f"- {n_pair} one-attribute queries, one per pair of core documents: the attribute only that pair lists, "
        "so its relevant set is exactly the pair.",
        f"- {n_and} two-attribute queries: the pair attributes of (i, k) and (j, k) of three core documents; only k "
        "lists both, i and j list one each.",
        f"- {c.docs - c.core} distractors list filler attributes only (no query asks for one).",
        f"- qrels/test.tsv: {pairs} (query, document) pairs, grade 1, by exact set membership of the query's "
        "attributes in the document's list.",
        "",
        "| file | sha256 |",
        "| --- | --- |",
        *[f"| {p} | {h} |" for p, h in digests.items()],
        "",
        f"Core document ids: {', '.join(data.core_ids)}.",
        "",
    ])
