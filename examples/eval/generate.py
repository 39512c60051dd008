#!/usr/bin/env python3
"""Writes dataset.jsonl next to this file: 500 synthetic support-desk samples in five
tasks, for `costfloor eval run` (format: docs/eval.md).

    python3 examples/eval/generate.py

Every sample is made up here from the lists below with a fixed seed, so the file is
the same on every run. Every prompt is unique: `costfloor sim`'s known-accuracy mode
looks answers up by the prompt text.
"""

import json
import os
import random

SEED = 20250601
rng = random.Random(SEED)
seen_prompts = set()


def unique(make):
    """Calls make() until it returns a (prompt, ...) tuple with an unseen prompt."""
    for _ in range(10000):
        result = make()
        if result[0] not in seen_prompts:
            seen_prompts.add(result[0])
            return result
    raise SystemExit("could not find a unique prompt")


def pick(values):
    return rng.choice(values)


FIRST = ["Dana", "Omar", "Priya", "Lukas", "Mei", "Tomás", "Aisha", "Jonas", "Chloe",
         "Ravi", "Ingrid", "Kwame", "Sofia", "Hiro", "Elena", "Marcus", "Nadia", "Pavel"]
LAST = ["Whitfield", "Haddad", "Raman", "Becker", "Tanaka", "Oliveira", "Mensah", "Novak",
        "Dubois", "Lindqvist", "Costa", "Okafor", "Moreau", "Petrov", "Silva", "Fischer"]
CITIES = ["Leeds", "Lyon", "Porto", "Gdansk", "Utrecht", "Valencia", "Tampere", "Graz",
          "Bristol", "Ghent", "Turin", "Brno", "Aarhus", "Cork", "Bilbao", "Malmo"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

# --- classification: sentiment and intent of support tickets -------------------------

PRODUCTS = ["the mobile app", "the billing portal", "the router", "my new headset",
            "the smart thermostat", "the desktop client", "the label printer",
            "the web dashboard", "the backup service", "the docking station",
            "the video doorbell", "the sync tool"]
SENTIMENT = {
    "positive": [
        "{P} is exactly what I needed, thank you.",
        "I am really happy with {p} since the last update.",
        "Great job on {p}, it saved me hours this week.",
        "Your agent sorted out {p} in minutes, much appreciated.",
        "Just wanted to say {p} has worked flawlessly for a month.",
        "Setting up {p} was quick and painless, well done.",
    ],
    "negative": [
        "{P} stopped working again and nobody has replied to me.",
        "I am very disappointed with {p}; it broke after two days.",
        "This is the third time {p} has failed me this month.",
        "{P} is so slow it is unusable, please fix it.",
        "I regret buying {p}, it has been nothing but trouble.",
        "Still waiting on a fix for {p}, and I am fed up.",
    ],
    "neutral": [
        "Which version of {p} am I running?",
        "Can you send me the manual for {p}?",
        "Please note my contact email for {p} has changed.",
        "What is the warranty period for {p}?",
        "Does {p} support a second user on the same plan?",
        "Where do I find the serial number of {p}?",
    ],
}
SUBSCRIPTIONS = ["Pro", "Team", "Family", "Business", "Starter", "Premium"]
INTENT = {
    "billing": [
        "I was charged twice for my {s} plan in {m}.",
        "Why did my {s} invoice for {m} go up by ${n}?",
        "Please refund the ${n} payment for my {s} plan.",
        "My card was declined when renewing the {s} plan on {d}.",
    ],
    "technical": [
        "The dashboard shows error {e} every time I log in.",
        "Sync fails with code {e} since {d}.",
        "The {s} export button does nothing in Firefox since {d}.",
        "The app crashes with error {e} when I upload a photo.",
    ],
    "account": [
        "I cannot reset the password on my {s} account since {d}.",
        "Please change the email on my account to {f}.{l}@example.com.",
        "How do I add {f} as a second admin on my {s} account?",
        "My account was locked after too many logins on {d}.",
    ],
    "shipping": [
        "Order {o} has not arrived and it was due on {d}.",
        "Can you ship order {o} to {c} instead of my home address?",
        "The tracking for order {o} has not moved since {d}.",
        "Order {o} arrived with one box missing.",
    ],
    "cancellation": [
        "Please cancel my {s} plan at the end of {m}.",
        "I want to close my {s} subscription before it renews on {d}.",
        "Stop my {s} plan from renewing, I no longer need it.",
        "How do I cancel the {s} plan I signed up for in {m}?",
    ],
}
INTENT_LABELS = list(INTENT)


def a_day():
    return f"{pick(MONTHS)} {rng.randint(1, 28)}"


def sentiment_sample():
    label = pick(list(SENTIMENT))
    product = pick(PRODUCTS)
    text = pick(SENTIMENT[label]).format(p=product, P=product[0].upper() + product[1:])
    prompt = ("Classify the sentiment of this support ticket as positive, negative or "
              f"neutral, and answer with the label only. Ticket: \"{text}\"")
    return prompt, label


def intent_sample():
    label = pick(INTENT_LABELS)
    text = pick(INTENT[label]).format(
        s=pick(SUBSCRIPTIONS), m=pick(MONTHS), n=rng.randint(3, 60), d=a_day(),
        e=pick([401, 403, 408, 429, 500, 502, 503, 504]), f=pick(FIRST).lower(),
        l=pick(LAST).lower(), o=f"#{rng.randint(10000, 99999)}", c=pick(CITIES))
    prompt = ("Label the intent of this support ticket as billing, technical, account, "
              f"shipping or cancellation, and answer with the label only. Ticket: \"{text}\"")
    return prompt, label


def classification(samples):
    for i in range(150):
        if i % 5 < 3:  # 90 sentiment, 60 intent
            prompt, label = unique(sentiment_sample)
            choices = ["positive", "negative", "neutral"]
        else:
            prompt, label = unique(intent_sample)
            choices = INTENT_LABELS
        samples.append({
            "id": f"cls-{i + 1:03d}", "task": "classification", "prompt": prompt,
            "max_tokens": 8, "temperature": 0, "expected": label,
            "scorer": {"type": "choice", "choices": choices},
        })


# --- extraction: fields of orders and invoices, as JSON -----------------------------

ITEMS = [("USB-C cable", 9, 19), ("desk lamp", 25, 60), ("office chair", 120, 340),
         ("toner cartridge", 35, 90), ("wireless mouse", 15, 45), ("monitor arm", 40, 110),
         ("label roll", 4, 12), ("laptop stand", 28, 75), ("webcam", 45, 130)]
VENDORS = ["Northwind Supplies", "Blue Harbour Ltd", "Kestrel Print", "Orchard IT",
           "Fjord Logistics", "Copperleaf Office", "Summit Cloud", "Redwood Parts"]
CURRENCIES = ["EUR", "GBP", "USD"]
EXTRACTION_SYSTEM = "You extract fields from business documents. Answer with one JSON object only."


def order_sample():
    item, low, high = pick(ITEMS)
    quantity = rng.randint(1, 24)
    unit = round(rng.randint(low * 4, high * 4) / 4, 2)
    order_id = str(rng.randint(10000, 99999))
    customer = f"{pick(FIRST)} {pick(LAST)}"
    prompt = ("Extract order_id, customer, item, quantity and unit_price as JSON. "
              f"Text: Order {order_id} from {customer}: {quantity} x {item} at "
              f"${unit:,.2f} each, ship to {pick(CITIES)}.")
    expected = {"order_id": order_id, "customer": customer, "item": item,
                "quantity": quantity, "unit_price": unit}
    return prompt, expected


def invoice_sample():
    number = f"INV-{rng.randint(1000, 9999)}"
    vendor = pick(VENDORS)
    currency = pick(CURRENCIES)
    total = round(rng.randint(2000, 900000) / 100, 2)
    due = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    prompt = ("Extract invoice_number, vendor, currency, total and due_date as JSON. "
              f"Text: Invoice {number} from {vendor} for {currency} {total:,.2f}, "
              f"payable by {due}.")
    expected = {"invoice_number": number, "vendor": vendor, "currency": currency,
                "total": total, "due_date": due}
    return prompt, expected


def extraction(samples):
    for i in range(120):
        prompt, expected = unique(order_sample if i % 2 == 0 else invoice_sample)
        samples.append({
            "id": f"ext-{i + 1:03d}", "task": "extraction", "system": EXTRACTION_SYSTEM,
            "prompt": prompt, "max_tokens": 64, "temperature": 0, "expected": expected,
            "scorer": {"type": "json_fields", "fields": list(expected)},
        })


# --- reasoning: arithmetic word problems ---------------------------------------------

def problem_shift():
    a, h = rng.randint(6, 40), rng.choice([6, 7, 8, 9, 10, 12])
    return (f"A support agent closes {a} tickets an hour over a shift of {h} hours. "
            "How many tickets does the agent close in the shift?", a * h)


def problem_tokens():
    cents = rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 15])
    thousands = rng.randint(2, 90)
    return (f"An API charges ${cents / 100:.2f} per 1,000 tokens. What does a month of "
            f"{thousands},000 tokens cost in dollars?", round(cents * thousands / 100, 2))


def problem_gpu():
    rate = rng.choice([1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0])
    days = rng.randint(2, 31)
    gpus = rng.choice([2, 3, 4, 8])
    return (f"A GPU rents for ${rate:.2f} an hour. What do {gpus} of them cost running "
            f"around the clock for {days} days, in dollars?", round(rate * 24 * days * gpus, 2))


def problem_queue():
    drain = rng.randint(2, 12)
    minutes = rng.randint(3, 30)
    arrive = rng.randint(1, 20)
    serve = arrive + drain
    queue = drain * minutes
    return (f"A queue holds {queue} requests. A server finishes {serve} requests a minute "
            f"while {arrive} new ones arrive each minute. How many minutes until the queue "
            "is empty?", minutes)


def problem_survey():
    n = rng.choice([40, 80, 120, 160, 200, 240, 300, 400, 500])
    pct = rng.choice([55, 60, 65, 70, 75, 80, 85, 90, 95])
    return (f"{n} customers answered a survey and {pct}% said they were satisfied. "
            "How many customers were not satisfied?", n * (100 - pct) // 100)


def problem_discount():
    boxes, unit = rng.randint(3, 40), rng.choice([12, 15, 18, 20, 24, 25, 30, 36, 40])
    pct = rng.choice([5, 10, 15, 20, 25])
    return (f"An order of {boxes} boxes at ${unit} each gets a {pct}% discount. "
            "What is the total after the discount, in dollars?",
            round(boxes * unit * (100 - pct) / 100, 2))


def problem_accuracy():
    total = rng.choice([200, 400, 500, 1000])
    right = rng.randint(total // 2, total)
    return (f"A model answers {right} of {total} test questions correctly. "
            "What is its accuracy as a percentage?", round(100 * right / total, 2))


def problem_trip():
    speed = rng.choice([40, 50, 60, 80, 90, 100, 120])
    hours = rng.choice([1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6])
    return (f"A delivery van covers {int(speed * hours)} km at a steady {speed} km/h. "
            "How many hours does the trip take?", hours)


PROBLEMS = [problem_shift, problem_tokens, problem_gpu, problem_queue, problem_survey,
            problem_discount, problem_accuracy, problem_trip]


def reasoning(samples):
    for i in range(80):
        prompt, answer = unique(PROBLEMS[i % len(PROBLEMS)])
        samples.append({
            "id": f"rsn-{i + 1:03d}", "task": "reasoning",
            "prompt": prompt + " Answer with the number only.",
            "max_tokens": 16, "temperature": 0, "expected": answer,
            "scorer": {"type": "numeric", "tolerance": 0.01},
        })


# --- routing: does the request need a human agent? ----------------------------------

NEEDS_HUMAN = [
    "I want to dispute a charge of ${n} on my {m} statement.",
    "My father passed away and I need to close his account ending {k}.",
    "I am filing a formal complaint about the engineer who visited on {d}.",
    "Someone logged in from {c} on {d} and changed my bank details.",
    "The refund form rejects my claim for ${n} for a damaged order, three times now.",
    "Your heater leaked and damaged my floor on {d}; who pays for the repair?",
    "My lawyer asks for all records you hold on account {k}.",
    "I was promised a ${n} credit by phone on {d} and it never came.",
]
SELF_SERVICE = [
    "What are your opening hours on {w}s?",
    "Where can I download the invoice for order #{o}?",
    "Can you resend the tracking link for order #{o}?",
    "Do you deliver to {c}?",
    "How do I switch the app language to {lang}?",
    "Is the {s} plan billed monthly or yearly?",
    "How many users can the {s} plan have?",
    "What is the return window for orders placed on {d}?",
]
LANGUAGES = ["French", "German", "Polish", "Spanish", "Dutch", "Italian", "Finnish",
             "Czech", "Danish", "Portuguese", "Swedish", "Greek"]


def routing_sample(needs_human):
    text = pick(NEEDS_HUMAN if needs_human else SELF_SERVICE).format(
        n=rng.randint(15, 2400), m=pick(MONTHS), k=rng.randint(1000, 9999), d=a_day(),
        c=pick(CITIES), w=pick(WEEKDAYS), o=rng.randint(10000, 99999),
        lang=pick(LANGUAGES), s=pick(SUBSCRIPTIONS))
    prompt = (f"Does this request need a human agent? Answer yes or no. Request: \"{text}\"")
    return prompt, "yes" if needs_human else "no"


def routing(samples):
    for i in range(100):
        needs_human = i % 2 == 0
        prompt, label = unique(lambda: routing_sample(needs_human))
        samples.append({
            "id": f"rte-{i + 1:03d}", "task": "routing",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 8, "temperature": 0, "expected": label,
            "scorer": {"type": "choice", "choices": ["yes", "no"]},
        })


# --- summarisation: the key phrase a faithful summary keeps -------------------------

PLANS = ["Starter", "Team", "Business", "Studio", "Scale"]
TEAMS = ["Nordics", "Iberia", "Benelux", "DACH", "Baltics", "Balkans"]
METHODS = ["iDEAL", "Bancontact", "BLIK", "MB Way", "Swish", "Twint"]
COUNTRIES = ["the Netherlands", "Belgium", "Poland", "Portugal", "Sweden", "Switzerland"]
DEVICES = ["PowerDock 2", "AirBeam S", "HomeHub Mini", "ChargePad X", "VoltStick 3"]
FEATURES = ["Stories", "Nearby", "Moments", "Collections", "Spotlight", "Daily Digest"]
REGIONS = ["the UK", "Ireland", "France", "Spain", "Italy", "Austria"]


def summary_sample(kind):
    if kind == 0:
        city, other = rng.sample(CITIES, 2)
        key = city
        text = (f"The {city} data centre goes offline for maintenance on {a_day()} from "
                f"01:00 to 05:00 UTC. Traffic moves to {other} and customers need to do nothing.")
    elif kind == 1:
        plan = pick(PLANS)
        old = rng.randint(8, 40)
        key = f"{plan} plan"
        text = (f"From {pick(MONTHS)}, the {plan} plan costs ${old + rng.randint(2, 9)} a "
                f"month instead of ${old}. Existing customers keep the old price until renewal.")
    elif kind == 2:
        major, minor = rng.randint(3, 9), rng.randint(0, 9)
        key = f"{major}.{minor}.{rng.randint(1, 9)}"
        text = (f"A bug in version {major}.{minor}.0 of the desktop client deleted draft "
                f"messages on exit. Version {key} fixes it and restores drafts from the last backup.")
    elif kind == 3:
        team = pick(TEAMS)
        key = f"{team} team"
        text = (f"The {team} team missed its response-time target in Q{rng.randint(1, 4)}, "
                f"answering in {rng.randint(5, 14)} hours on average against a goal of 4. "
                "Two new hires start next month to close the gap.")
    elif kind == 4:
        index = rng.randrange(len(METHODS))
        key = METHODS[index]
        text = (f"Customers in {COUNTRIES[index]} can now pay by {key}. The option appears "
                f"at checkout for orders over {rng.randint(2, 30) * 5} euros.")
    elif kind == 5:
        city = pick(CITIES)
        key = city
        text = (f"Our warehouse in {city} flooded on {pick(WEEKDAYS)}, and about "
                f"{rng.randint(2, 60) * 10} orders are delayed. Affected customers get a "
                f"{rng.choice([10, 15, 20, 25])}% voucher by email.")
    elif kind == 6:
        device = pick(DEVICES)
        first, last = sorted(rng.sample(range(12), 2))
        key = device
        text = (f"The {device} recall covers units sold between {MONTHS[first]} and "
                f"{MONTHS[last]}. Owners should stop using it and request a free replacement.")
    elif kind == 7:
        before = rng.randint(6, 15)
        key = "approval tool"
        text = (f"{pick(FIRST)} from finance reports that invoices now take "
                f"{rng.randint(1, before - 2)} days to process instead of {before} since "
                "the new approval tool went live. Every team should submit invoices through it.")
    elif kind == 8:
        feature = pick(FEATURES)
        key = feature
        text = (f"The app's {feature} feature will be retired on {a_day()} because fewer "
                f"than {rng.randint(2, 9)}% of users open it. Saved items can be exported until then.")
    else:
        region = pick(REGIONS)
        key = region
        text = (f"Support hours in {region} change to 08:00-{rng.randint(18, 22)}:00 from "
                f"{pick(MONTHS)}. Weekend chat stays open, but phone lines close on Sundays.")
    return f"Summarise in one sentence: {text}", key


def summarisation(samples):
    for i in range(50):
        prompt, key = unique(lambda: summary_sample(i % 10))
        samples.append({
            "id": f"sum-{i + 1:03d}", "task": "summarisation", "prompt": prompt,
            "max_tokens": 60, "temperature": 0, "expected": key,
            "scorer": {"type": "contains"},
        })


def main():
    samples = []
    classification(samples)
    extraction(samples)
    reasoning(samples)
    routing(samples)
    summarisation(samples)
    assert len(samples) == 500
    assert len(seen_prompts) == 500
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for sample in samples:
            out.write(json.dumps(sample, ensure_ascii=False) + "\n")
    print(f"wrote {len(samples)} samples to {path}")


if __name__ == "__main__":
    main()
