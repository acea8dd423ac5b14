/**
 * Writes the benchmark corpora `bench/corpora/queries.json` (2,048 short texts of
 * 5-20 tokens) and `bench/corpora/passages.json` (1,024 passages of 60-128 tokens),
 * counted with the default model's tokenizer (`build/models/universal-sentence-encoder-lite/tokenizer.json`).
 * No network and no randomness outside a seeded generator: the same script always
 * writes the same files, and the files are committed so every run times the same texts.
 *
 * Run: `npx tsx bench/corpora/generate-corpora.ts` (after `npm ci` built the model).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { loadTokenizer } from "../../src/tokenize/index.js";
import { CORPUS_LIMITS } from "../corpora.js";

const QUERY_COUNT = 2048;
const PASSAGE_COUNT = 1024;
const SEED = 0x5eed_2024;

/** mulberry32: a tiny seeded PRNG, enough to make the corpora reproducible. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const random = createRandom(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
const integerBetween = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

/** Vocabulary of one subject area; templates draw every slot from the same domain so texts read sensibly. */
interface Domain {
  name: string;
  things: string[];
  people: string[];
  actions: string[];
  qualities: string[];
  places: string[];
  outcomes: string[];
}

const DOMAINS: Domain[] = [
  {
    name: "software",
    things: ["the database migration", "a memory leak", "the build pipeline", "the login page", "an API gateway", "the search index", "a Kubernetes cluster", "the caching layer", "a TypeScript monorepo", "the message queue", "unit tests", "the deployment script"],
    people: ["the backend team", "a junior developer", "the site reliability engineers", "our security reviewer", "the open-source maintainers", "the platform group"],
    actions: ["debug", "refactor", "deploy", "benchmark", "monitor", "secure", "migrate", "profile", "document", "scale"],
    qualities: ["slow", "flaky", "reliable", "scalable", "legacy", "well-tested", "misconfigured", "stateless"],
    places: ["in production", "on a staging server", "behind a load balancer", "in the cloud", "on a laptop", "inside a container"],
    outcomes: ["latency dropped by half", "the error rate fell below one percent", "deployments became routine", "the on-call pager went quiet", "costs went down noticeably", "new engineers onboarded faster"],
  },
  {
    name: "cooking",
    things: ["sourdough bread", "a tomato sauce", "roast chicken", "vegetable curry", "chocolate cake", "fresh pasta", "a lentil soup", "grilled salmon", "pancake batter", "homemade stock", "pie crust", "fried rice"],
    people: ["a home cook", "the pastry chef", "my grandmother", "a restaurant kitchen", "beginner bakers", "the food critic"],
    actions: ["bake", "season", "simmer", "marinate", "freeze", "reheat", "thicken", "knead", "caramelize", "store"],
    qualities: ["crispy", "tender", "bland", "spicy", "gluten-free", "vegan", "overcooked", "fluffy"],
    places: ["in a cast iron pan", "in the oven", "on the grill", "in a slow cooker", "at high altitude", "in a small apartment kitchen"],
    outcomes: ["the crust turned golden", "the flavours came together overnight", "the texture stayed moist", "dinner was ready in thirty minutes", "nothing went to waste", "the guests asked for the recipe"],
  },
  {
    name: "travel",
    things: ["a rail pass", "travel insurance", "a visa application", "carry-on luggage", "a hostel booking", "the airport transfer", "a hiking permit", "a rental car", "the ferry schedule", "a city museum card"],
    people: ["solo travellers", "a family with toddlers", "backpackers", "business travellers", "the tour guide", "retired couples"],
    actions: ["book", "cancel", "pack", "plan", "budget for", "upgrade", "reschedule", "compare", "reserve", "explore"],
    qualities: ["cheap", "crowded", "scenic", "remote", "overpriced", "family-friendly", "last-minute", "off-season"],
    places: ["in Lisbon", "across Japan", "near the Alps", "in Patagonia", "along the Amalfi coast", "in rural Vietnam", "around Iceland", "in Marrakech"],
    outcomes: ["the trip cost less than expected", "the connection was missed by minutes", "the views were worth the climb", "the itinerary had room to breathe", "everyone slept well", "the refund arrived a week later"],
  },
  {
    name: "health",
    things: ["lower back pain", "a sleep routine", "blood pressure", "a running plan", "vitamin D levels", "seasonal allergies", "a knee injury", "stress at work", "a balanced diet", "hydration"],
    people: ["the physiotherapist", "older adults", "new parents", "office workers", "amateur athletes", "the family doctor"],
    actions: ["improve", "track", "treat", "prevent", "reduce", "manage", "measure", "recover from", "stretch for", "understand"],
    qualities: ["chronic", "mild", "persistent", "healthy", "sedentary", "early", "gradual", "consistent"],
    places: ["at home", "in the clinic", "at the gym", "during long flights", "at a standing desk", "outdoors"],
    outcomes: ["symptoms eased within weeks", "sleep quality improved", "the pain stopped returning", "energy levels rose", "the follow-up results looked normal", "recovery took longer than planned"],
  },
  {
    name: "finance",
    things: ["an emergency fund", "index funds", "a mortgage rate", "student loans", "a retirement account", "the household budget", "credit card debt", "quarterly taxes", "a small business loan", "currency exchange fees"],
    people: ["first-time buyers", "freelancers", "the accountant", "young investors", "a retired teacher", "small shop owners"],
    actions: ["save for", "refinance", "pay off", "invest in", "track", "diversify", "negotiate", "estimate", "compare", "automate"],
    qualities: ["fixed", "variable", "low-cost", "risky", "tax-free", "long-term", "monthly", "hidden"],
    places: ["in the United States", "in the euro area", "through an online bank", "with a credit union", "on a mobile app", "at a local branch"],
    outcomes: ["the interest saved added up", "the balance reached zero by spring", "fees stopped eating into returns", "the paperwork took an afternoon", "monthly payments dropped", "the portfolio weathered the downturn"],
  },
  {
    name: "science",
    things: ["the immune response", "ocean currents", "a solar eclipse", "protein folding", "black holes", "soil bacteria", "the greenhouse effect", "quantum entanglement", "plate tectonics", "photosynthesis"],
    people: ["the research team", "graduate students", "astronomers", "field biologists", "climate scientists", "a physics teacher"],
    actions: ["measure", "observe", "model", "explain", "simulate", "sample", "predict", "classify", "replicate", "map"],
    qualities: ["surprising", "rare", "fundamental", "controversial", "well-documented", "microscopic", "seasonal", "unexpected"],
    places: ["in the Arctic", "at a deep-sea vent", "in the laboratory", "on the Moon", "in tropical rainforests", "under a microscope"],
    outcomes: ["the data matched the prediction", "the effect was smaller than feared", "a new species was described", "the paper was widely cited", "the experiment had to be repeated", "the model improved forecasts"],
  },
  {
    name: "history",
    things: ["the Roman road network", "medieval trade routes", "the printing press", "the Industrial Revolution", "ancient irrigation", "the Silk Road", "early railways", "the telegraph", "city walls", "the spice trade"],
    people: ["merchants", "historians", "monks", "archaeologists", "the city council", "engineers of the period"],
    actions: ["build", "record", "defend", "trade", "rebuild", "excavate", "reinterpret", "finance", "expand", "preserve"],
    qualities: ["ancient", "forgotten", "influential", "fragile", "well-preserved", "disputed", "remarkable", "local"],
    places: ["in Mesopotamia", "along the Danube", "in Renaissance Florence", "across the Ottoman Empire", "in Victorian London", "on the Andean plateau"],
    outcomes: ["trade flourished for centuries", "the records survived a fire", "the city doubled in size", "new ideas spread quickly", "the site was forgotten until recently", "the archive changed the accepted story"],
  },
  {
    name: "home",
    things: ["a leaking faucet", "the heat pump", "indoor plants", "a garden shed", "wall insulation", "the washing machine", "a smart thermostat", "kitchen cabinets", "the roof gutters", "a noisy fridge"],
    people: ["renters", "a first-time homeowner", "the electrician", "our neighbours", "weekend gardeners", "the landlord"],
    actions: ["repair", "install", "clean", "replace", "paint", "insulate", "winterize", "organize", "water", "inspect"],
    qualities: ["energy-efficient", "damp", "cheap", "durable", "cluttered", "drafty", "cosy", "outdated"],
    places: ["in the basement", "in a rented flat", "on the balcony", "in the attic", "in a cold climate", "in the back garden"],
    outcomes: ["the heating bill fell", "the mould never came back", "the job took one weekend", "the plants survived the winter", "the landlord paid for the part", "the room finally felt warm"],
  },
  {
    name: "sports",
    things: ["a marathon training block", "the penalty shootout", "a tennis serve", "swimming technique", "the league table", "a cycling climb", "basketball defence", "a climbing route", "the transfer window", "youth coaching"],
    people: ["the head coach", "amateur runners", "the goalkeeper", "club volunteers", "professional cyclists", "young players"],
    actions: ["train for", "improve", "analyse", "practise", "coach", "warm up for", "recover after", "scout", "win", "prepare for"],
    qualities: ["explosive", "tactical", "exhausting", "consistent", "aggressive", "technical", "underrated", "decisive"],
    places: ["at altitude", "in the final minutes", "on a wet track", "at the home stadium", "during preseason", "on the indoor wall"],
    outcomes: ["the team stayed unbeaten", "personal bests fell", "injuries became rare", "the crowd went silent", "the club qualified for Europe", "the comeback became legend"],
  },
  {
    name: "law",
    things: ["a rental contract", "data protection rules", "a trademark dispute", "employment law", "a parking fine", "the terms of service", "a will", "copyright licensing", "consumer refunds", "a non-compete clause"],
    people: ["tenants", "the small claims court", "a privacy lawyer", "employers", "the regulator", "independent artists"],
    actions: ["challenge", "review", "draft", "enforce", "comply with", "appeal", "terminate", "negotiate", "interpret", "register"],
    qualities: ["binding", "unfair", "ambiguous", "standard", "void", "recent", "strict", "international"],
    places: ["in the European Union", "in California", "under English law", "in a small claims court", "across borders", "in an online marketplace"],
    outcomes: ["the deposit was returned in full", "the clause was struck out", "the fine was cancelled", "both sides settled quickly", "the company changed its policy", "the ruling set a precedent"],
  },
];

const QUERY_TEMPLATES: Array<(domain: Domain) => string> = [
  (d) => `how to ${pick(d.actions)} ${pick(d.things)}`,
  (d) => `how do I ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)}?`,
  (d) => `best way to ${pick(d.actions)} ${pick(d.qualities)} ${stripArticle(pick(d.things))}`,
  (d) => `why is ${pick(d.things)} so ${pick(d.qualities)}`,
  (d) => `what would ${pick(d.people)} recommend for ${stripArticle(pick(d.things))}`,
  (d) => `${stripArticle(pick(d.things))} ${pick(d.places)}`,
  (d) => `${pick(d.qualities)} ${stripArticle(pick(d.things))} tips`,
  (d) => `can ${pick(d.people)} ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)}`,
  (d) => `${stripArticle(pick(d.things))} vs ${stripArticle(pick(d.things))}`,
  (d) => `when should you ${pick(d.actions)} ${pick(d.things)}?`,
  (d) => `is it worth it to ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)}`,
  (d) => `common mistakes when you ${pick(d.actions)} ${pick(d.things)}`,
  (d) => `checklist to ${pick(d.actions)} ${stripArticle(pick(d.things))} for ${pick(d.people)}`,
  (d) => `${pick(d.people)} ${pick(d.actions)} ${pick(d.things)}: what happened next`,
  (d) => `What is the cheapest way to ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)} this year?`,
  (d) => `${stripArticle(pick(d.things))} ${integerBetween(2015, 2025)} guide`,
];

const SENTENCE_TEMPLATES: Array<(domain: Domain) => string> = [
  (d) => `${capitalize(pick(d.people))} tried to ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)}, and ${pick(d.outcomes)}.`,
  (d) => `Most guides say you should ${pick(d.actions)} ${pick(d.things)} early, because a ${pick(d.qualities)} start makes everything later harder.`,
  (d) => `Many describe ${pick(d.things)} as ${pick(d.qualities)}, but ${pick(d.people)} may disagree.`,
  (d) => `After ${integerBetween(2, 14)} weeks of work ${pick(d.places)}, ${pick(d.outcomes)}.`,
  (d) => `The hardest part was deciding whether to ${pick(d.actions)} ${pick(d.things)} or to ${pick(d.actions)} ${pick(d.things)} first.`,
  (d) => `According to ${pick(d.people)}, the ${pick(d.qualities)} cases are the ones worth writing down.`,
  (d) => `Nobody expected that ${pick(d.outcomes)}, least of all ${pick(d.people)}.`,
  (d) => `In ${integerBetween(1890, 2024)}, ${pick(d.people)} began to ${pick(d.actions)} ${pick(d.things)} ${pick(d.places)}.`,
  (d) => `A simple rule helps: ${pick(d.actions)} ${pick(d.things)} before it becomes ${pick(d.qualities)}.`,
  (d) => `Costs ranged from ${integerBetween(10, 90)} to ${integerBetween(100, 900)} dollars, depending on how ${pick(d.qualities)} the situation was.`,
  (d) => `Critics pointed out that ${pick(d.things)} was still ${pick(d.qualities)}, even ${pick(d.places)}.`,
  (d) => `Still, ${pick(d.outcomes)}, which is why ${pick(d.people)} would still choose the same approach.`,
  (d) => `If you have never had to ${pick(d.actions)} ${pick(d.things)}, start small and write down what changes.`,
];

function stripArticle(phrase: string): string {
  return phrase.replace(/^(the|a|an|my|our) /, "");
}

function capitalize(phrase: string): string {
  return phrase.charAt(0).toUpperCase() + phrase.slice(1);
}

const modelDir = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
const tokenizer = await loadTokenizer(join(modelDir, "tokenizer.json"), { maxTokens: 4096 });
const tokensOf = (text: string): number => tokenizer.encode(text, { truncate: "none" }).fullLength;

const queries = new Set<string>();
while (queries.size < QUERY_COUNT) {
  const text = pick(QUERY_TEMPLATES)(pick(DOMAINS));
  const tokens = tokensOf(text);
  if (tokens >= CORPUS_LIMITS.queries.minTokens && tokens <= CORPUS_LIMITS.queries.maxTokens) queries.add(text);
}

const passages = new Set<string>();
while (passages.size < PASSAGE_COUNT) {
  const domain = pick(DOMAINS);
  const target = integerBetween(CORPUS_LIMITS.passages.minTokens, CORPUS_LIMITS.passages.maxTokens);
  const sentences: string[] = [];
  let tokens = 0;
  while (tokens < target) {
    sentences.push(pick(SENTENCE_TEMPLATES)(domain));
    tokens = tokensOf(sentences.join(" "));
  }
  if (tokens > CORPUS_LIMITS.passages.maxTokens) sentences.pop();
  const text = sentences.join(" ");
  const count = tokensOf(text);
  if (count >= CORPUS_LIMITS.passages.minTokens && count <= CORPUS_LIMITS.passages.maxTokens) passages.add(text);
}

const folder = fileURLToPath(new URL(".", import.meta.url));
writeFileSync(join(folder, "queries.json"), `${JSON.stringify([...queries], null, 1)}\n`);
writeFileSync(join(folder, "passages.json"), `${JSON.stringify([...passages], null, 1)}\n`);
console.log(`wrote ${queries.size} queries and ${passages.size} passages to ${folder}`);
