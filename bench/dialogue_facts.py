"""What the long dialogues of ``bench/dialogues.py`` are made of: people, places and things to
fill slots with, the facts speakers tell each other (each with the question that asks about it,
worded away from the fact's own words), facts that change over time, pairs of facts that only
answer a question together, dated events, small talk, and questions nothing in a conversation
answers.

Slots in braces are filled per conversation: ``{X}`` is the speaker the question is about; other
slots come from ``POOLS``. A question never reuses the distinctive words of its fact: it names
the thing by another word ("dog" for "beagle puppy"), as people do when they ask weeks later.
"""

from __future__ import annotations

POOLS: dict[str, list[str]] = {
    "person": [
        "Clara",
        "Ben",
        "Tariq",
        "Maya",
        "Sven",
        "Lucia",
        "Noah",
        "Farah",
        "Ivo",
        "Zoe",
        "Pablo",
        "Anya",
        "Rohan",
        "Beatriz",
        "Kai",
        "Leila",
        "Oskar",
        "Mina",
        "Theo",
        "Yara",
    ],
    "kid": ["Lily", "Ava", "Nora", "Elsie", "Iris", "Ruby", "Maeve", "Ada"],
    "boy": ["Leo", "Finn", "Arlo", "Milo", "Otis", "Jude", "Rafi", "Teo"],
    "pet": [
        "Biscuit",
        "Pepper",
        "Mochi",
        "Juniper",
        "Waffles",
        "Ziggy",
        "Noodle",
        "Custard",
        "Pip",
        "Bramble",
    ],
    "city": [
        "Lisbon",
        "Porto",
        "Lyon",
        "Bristol",
        "Leeds",
        "Krakow",
        "Ghent",
        "Valencia",
        "Turin",
        "Bergen",
        "Tampere",
        "Graz",
        "Utrecht",
        "Cork",
        "Aarhus",
        "Bilbao",
        "Ljubljana",
        "Brno",
    ],
    "country": ["Norway", "Slovenia", "Portugal", "Scotland", "Croatia", "Finland", "Austria", "Greece"],
    "breed": ["beagle", "spaniel", "whippet", "collie", "dachshund", "labrador"],
    "book": [
        "The Salt Road",
        "Winter Orchard",
        "A Map of Small Lies",
        "The Glass Harbour",
        "Night Ferry",
        "The Cartographer's Daughter",
        "Paper Lanterns",
        "The Long Tide",
    ],
    "band": ["The Lumen Lights", "Harbour Static", "Velvet Kites", "Northbound Choir", "The Copper Foxes"],
    "company": [
        "Brightwell",
        "Norda Labs",
        "Quayside Media",
        "Tallis & Co",
        "Greenleaf Foods",
        "Orbit Freight",
    ],
    "car": ["Fiat Panda", "Skoda Fabia", "Volvo estate", "Renault Clio", "Toyota Yaris", "Mini Cooper"],
    "phone": ["Pixel", "iPhone", "Fairphone", "Galaxy"],
    "hood": ["Riverside", "Old Town", "Hillcrest", "the harbour district", "Greenfield", "Canal Quarter"],
    "dish": ["lentil soup", "chicken pie", "mushroom risotto", "beef stew", "mac and cheese", "dal"],
    "month": ["March", "April", "May", "June", "July", "August", "September", "October"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "amount": ["1,150", "1,450", "980", "1,320", "1,700"],
    "job": [
        "graphic designer",
        "pharmacist",
        "bus driver",
        "primary teacher",
        "software tester",
        "chef",
        "physiotherapist",
        "accountant",
        "librarian",
        "electrician",
    ],
    "team": ["the Wolves", "the Mariners", "the Rovers", "the Harriers"],
    "show": ["Coastline", "The Night Desk", "Small Kingdoms", "Deep Field", "The Baker Street Files"],
    "cuisine": ["Ethiopian", "Vietnamese", "Georgian", "Peruvian", "Sri Lankan", "Lebanese"],
    "animal": ["rabbit", "tortoise", "parrot", "hamster", "ferret"],
    "venue": ["St Anne's church hall", "the old library", "the community centre", "the town hall"],
    "reason": [
        "the flights got too expensive",
        "my mum is having an operation that week",
        "work won't give me the days off",
        "the hotel cancelled on us",
        "we're saving for a house now",
    ],
}

# (what the speaker says, the question about it). ``{X}``: the speaker.
SINGLE_HOP: list[tuple[str, str]] = [
    (
        "We finally adopted a {breed} puppy from the shelter, we named him {pet}.",
        "What is the name of {X}'s dog?",
    ),
    ("I can't eat peanuts, my throat swells up if I even touch them.", "Which food is {X} allergic to?"),
    (
        "I've been practising the cello every evening since {month}.",
        "What musical instrument is {X} learning?",
    ),
    ("The knee surgery went fine, the physio says six weeks on crutches.", "What operation did {X} have?"),
    ("Our rent goes up to {amount} a month from {month}.", "How much will {X}'s apartment cost them?"),
    (
        "I switched to decaf because I kept waking up at three in the morning.",
        "Why did {X} change what coffee they drink?",
    ),
    (
        "We painted the living room a dark olive green at the weekend.",
        "What colour are the lounge walls at {X}'s place?",
    ),
    ("My grandmother turned ninety-four, we had cake at the care home.", "How old is {X}'s nan?"),
    ("I signed up for the {city} half marathon in {month}.", "Which race has {X} entered?"),
    (
        "{kid} lost her first tooth at school today, she was so proud.",
        "Which of {X}'s children had a milk tooth come out?",
    ),
    ("I got a tattoo of a lighthouse on my forearm.", "What design did {X} get inked?"),
    (
        "I've been reading {book} on the bus, it's about a shipwreck.",
        "Which novel is {X} into at the moment?",
    ),
    ("My brother {person} is a firefighter in {city}.", "What does {X}'s sibling do for a living?"),
    ("I bought a second-hand {car} from a neighbour.", "What vehicle did {X} get?"),
    (
        "We're growing tomatoes and chillies on the balcony this year.",
        "What vegetables is {X} cultivating at home?",
    ),
    ("I passed my driving test on the third attempt!", "What exam did {X} finally get through?"),
    ("My favourite band is {band}, I've seen them live four times.", "Which group does {X} like most?"),
    ("I volunteer at the food bank on {weekday} mornings.", "Where does {X} help out without pay?"),
    ("I cracked my screen dropping it on the tram steps.", "What happened to {X}'s mobile?"),
    ("My partner {person} works nights as a nurse.", "What is the job of {X}'s other half?"),
    ("I'm learning Japanese with an app, twenty minutes a day.", "What language is {X} studying?"),
    ("We got married in a tiny chapel in {city} eight years ago.", "Where did {X}'s wedding take place?"),
    (
        "I'm terrified of heights, I couldn't even stand on the glass floor of the tower.",
        "What phobia does {X} have?",
    ),
    ("My go-to comfort meal is my mum's {dish}.", "What food cheers {X} up?"),
    (
        "I won the office chess tournament, I beat my manager in the final.",
        "Which competition at work did {X} come first in?",
    ),
    (
        "I fixed the leaking kitchen tap myself with a video tutorial.",
        "What household repair did {X} manage?",
    ),
    ("I've been going to a pottery class, so far I've made one wonky bowl.", "What craft has {X} taken up?"),
    (
        "We booked a cabin by a lake in {country} for the summer holidays.",
        "Where is {X} staying on vacation?",
    ),
    ("Our cat {pet} knocked a vase off the shelf again.", "Which of {X}'s animals keeps breaking things?"),
    ("I give blood every three months, I'm O negative.", "What is {X}'s blood group?"),
    ("I took up bouldering at the climbing gym near my flat.", "What sport does {X} do indoors?"),
    ("{boy} says he wants to be an astronaut when he grows up.", "What career dream does {X}'s son have?"),
    (
        "I've got a scar on my chin from falling off a bike when I was seven.",
        "How did {X} get the mark on their face?",
    ),
    (
        "The only thing I collect is old postcards, I have about three hundred.",
        "What does {X} keep a collection of?",
    ),
    ("I play in goal for a Sunday league football team.", "What position does {X} play in soccer?"),
    (
        "I stopped taking sugar in my tea a year ago and don't miss it.",
        "What did {X} give up adding to their drink?",
    ),
    ("My dad taught me to sail on the lake where he grew up.", "Who showed {X} how to handle a boat?"),
    (
        "I'm saving up for a trip to see the northern lights.",
        "What natural phenomenon does {X} want to witness?",
    ),
    ("I sing alto in a choir that meets on {weekday}s.", "What voice part does {X} have?"),
    ("My first job was delivering newspapers at fourteen.", "How did {X} earn money as a teenager?"),
]

# A fact that changes: (what is said first, what is said later, the question about now). The
# later statement is the evidence.
UPDATES: list[tuple[str, str, str]] = [
    (
        "I started a new job as a {job} at {company}.",
        "I handed in my notice, I'm working at {company2} as a {job2} now.",
        "What is {X}'s current job?",
    ),
    (
        "We live in a small flat in {hood}.",
        "We moved house! We're in {hood2} now, much more space.",
        "Which neighbourhood does {X} live in now?",
    ),
    (
        "I drive an old {car}, it still runs fine.",
        "I sold the {car} and bought a {car2}.",
        "What car does {X} drive these days?",
    ),
    (
        "I go to the gym every {weekday}.",
        "I've moved my gym sessions to {weekday2}s.",
        "On which day does {X} work out now?",
    ),
    (
        "I've gone vegetarian, no meat for me anymore.",
        "I'm eating meat again, the vegetarian thing didn't stick.",
        "Does {X} eat meat at the moment?",
    ),
    (
        "We're planning a trip to {city} in {month}.",
        "We called off the {city} trip, {reason}.",
        "Is {X} still travelling to {city}?",
    ),
    (
        "I've been seeing someone, {person}, it's going well.",
        "{person} and I split up, it's for the best.",
        "Is {X} still in a relationship with {person}?",
    ),
    (
        "My goal this year is to run ten kilometres in under an hour.",
        "I've raised my goal, I'm training for a full marathon now.",
        "What is {X}'s running target now?",
    ),
    (
        "I'm still using my ancient {phone}.",
        "I finally upgraded my phone, I've got a new {phone2}.",
        "Which phone does {X} use now?",
    ),
    (
        "I play bass in a covers band.",
        "I left the band, these days I play piano on my own.",
        "What music does {X} make currently?",
    ),
    (
        "I cycle to work every day.",
        "Since the office moved I take the train to work.",
        "How does {X} commute now?",
    ),
    (
        "My manager is {person}, she's great.",
        "I have a new boss, {person2}, we'll see how it goes.",
        "Who does {X} report to now?",
    ),
    (
        "I get up at six every morning.",
        "I've started getting up at five to write before work.",
        "What time does {X} wake up these days?",
    ),
    (
        "We have one cat, {pet}.",
        "We adopted a second cat, so {pet} has a sister now.",
        "How many cats does {X} have?",
    ),
    (
        "I'm taking evening classes in accounting.",
        "I dropped accounting and switched to a web design course.",
        "What is {X} studying in the evenings?",
    ),
    (
        "I'm reading {book} at the moment.",
        "I gave up on {book}, now I'm on {book2}.",
        "What book is {X} reading now?",
    ),
    (
        "My sister {person} lives with us for now.",
        "{person} moved out last week, she got her own place in {city}.",
        "Who lives in {X}'s home now?",
    ),
    (
        "I support {team}, have done since I was a kid.",
        "Don't laugh, I've got a season ticket for {team2} now.",
        "Which team does {X} follow now?",
    ),
]

# Two facts, told in different sessions, that answer a question only together: (first, later,
# question). Both are the evidence.
MULTI_HOP: list[tuple[str, str, str]] = [
    (
        "My cousin {person} lives in {city}, she runs a bakery there.",
        "I'm off to visit my cousin next weekend, can't wait.",
        "Which city is {X} heading to to see family?",
    ),
    (
        "We got a {animal} called {pet} for the kids.",
        "{pet} has been poorly, the vet thinks he ate something.",
        "What kind of animal of {X}'s got sick?",
    ),
    (
        "My colleague {person} lent me a novel called {book}.",
        "I finished {book} on the plane, the ending got me.",
        "Who lent {X} the book they finished while flying?",
    ),
    (
        "I joined a choir that rehearses at {venue}.",
        "Our first concert is in {month}, at the same place we rehearse.",
        "Where will {X}'s choir perform?",
    ),
    (
        "{person} has been my best friend since university.",
        "My best friend got engaged last night!",
        "Who got engaged, according to {X}?",
    ),
    (
        "I work at {company}.",
        "Our company just opened an office in {city}.",
        "In which city did {X}'s employer open a new branch?",
    ),
    (
        "Our neighbour {person} is a retired electrician.",
        "The neighbour rewired our garden lights for free.",
        "What trade did the person who fixed {X}'s garden lights work in?",
    ),
    (
        "My dad grew up in {city}.",
        "We're taking dad back to his hometown for his seventieth.",
        "Where is {X} taking their father for his birthday?",
    ),
    (
        "My sister {person} is a dentist.",
        "I finally had my teeth checked, my sister did it for free.",
        "Who did {X}'s dental check-up?",
    ),
    (
        "I'm allergic to cats, my eyes stream.",
        "We're looking after {person}'s cat this week.",
        "Why will {X} probably struggle this week?",
    ),
    (
        "{kid} started violin lessons.",
        "{kid} played at her first recital today, I cried.",
        "What instrument did {X}'s daughter play at the recital?",
    ),
    (
        "My uncle {person} keeps bees in {country}.",
        "We got a jar of honey from my uncle in the post.",
        "Where does the honey {X} was sent come from?",
    ),
    (
        "My mum's favourite flower is the peony.",
        "I took mum flowers for Mother's Day, her favourite ones of course.",
        "What flowers did {X} bring their mother?",
    ),
    (
        "I learned to knit from my grandmother.",
        "I knitted a scarf for {person}'s birthday.",
        "Who taught {X} the skill they used for a birthday present?",
    ),
]

# Dated events: (what the speaker says happened, how a question words it).
EVENTS: list[tuple[str, str]] = [
    ("I ran my first 5k race yesterday", "complete a five kilometre run"),
    ("I had my wisdom teeth out yesterday", "have dental surgery"),
    ("we took the kids to the aquarium yesterday", "visit the sea life centre with the children"),
    ("I went to a cooking class yesterday", "attend a culinary workshop"),
    ("I saw {band} live yesterday", "go to a gig"),
    ("I got promoted yesterday", "move up at work"),
    ("I had a job interview at {company} yesterday", "interview for a position"),
    ("we planted an apple tree in the garden yesterday", "put a fruit tree in the ground"),
    ("we went camping by the lake yesterday", "sleep outdoors in a tent"),
    ("I got a flat tyre on the motorway yesterday", "get a puncture while driving"),
    ("we went to my cousin's wedding yesterday", "attend a family marriage ceremony"),
    ("I moved my mum into her new flat yesterday", "help a parent relocate"),
    ("I gave a talk at a conference in {city} yesterday", "speak at an industry event"),
    ("we adopted two chickens yesterday", "get some hens"),
    ("I sold my old bike online yesterday", "get rid of a bicycle"),
    ("I finished the jigsaw with a thousand pieces yesterday", "complete a big puzzle"),
    ("I went to the opera for the first time yesterday", "attend a classical singing performance"),
    ("I took my driving theory test yesterday", "sit a written road exam"),
    ("we had a power cut all evening yesterday", "lose electricity at home"),
    ("I volunteered at the marathon water station yesterday", "hand out drinks at a race"),
]

# Small talk: exchanges of two to four turns; a turn starting with "B:" is the other speaker's.
SMALL_TALK: list[list[str]] = [
    [
        "Work was chaos today, the printer died again.",
        "B:Printers are cursed, honestly. Did you get it fixed?",
        "Someone from IT came eventually.",
    ],
    ["It rained all weekend so we stayed in and watched films.", "B:Same here, we finished a whole series."],
    [
        "Have you seen the new season of {show}?",
        "B:Only the first episode, no spoilers!",
        "My lips are sealed.",
    ],
    ["I tried a new {cuisine} place in town.", "B:Any good?", "Really good, the portions were huge."],
    ["Traffic was terrible this morning.", "B:Roadworks on the ring road again I bet."],
    [
        "Did you watch the match last night?",
        "B:I fell asleep at half time, who won?",
        "{team} in the last minute.",
    ],
    ["I'm so tired this week.", "B:Early night tonight then.", "That's the plan."],
    ["My neighbour's dog barks every time the post arrives.", "B:Ours does that with the bin lorry."],
    ["We had friends over for dinner on Saturday.", "B:What did you cook?", "Just pasta, nothing fancy."],
    [
        "The heating broke again.",
        "B:In this weather? Poor you.",
        "The landlord says someone will come next week.",
    ],
    [
        "I've been trying to drink more water.",
        "B:Me too, I've got one of those bottles with the times on it.",
    ],
    ["My inbox is out of control.", "B:Declare bankruptcy and archive everything.", "Tempting."],
    [
        "I walked past that old cinema, it's being turned into flats.",
        "B:Such a shame, I saw my first film there.",
    ],
    ["Any plans for the weekend?", "B:Not really, maybe a walk if it's dry.", "Same, I need a quiet one."],
    ["I found a great podcast about history.", "B:Send me the link!", "Will do."],
    [
        "The supermarket has changed its layout again.",
        "B:Why do they keep doing that?",
        "To make us buy more, I guess.",
    ],
    ["I can't believe how early it gets dark now.", "B:Roll on summer."],
    ["{person} from work brought in homemade brownies.", "B:Lucky you, our office only has stale biscuits."],
    ["I've started going for a walk at lunch.", "B:Good idea, I never leave my desk."],
    ["My parents are visiting next month.", "B:Are they staying with you?", "Just for a couple of nights."],
    ["I think I'm coming down with a cold.", "B:Lots of tea and honey.", "Already on it."],
    ["We watched a documentary about octopuses.", "B:They're so clever, it's a bit scary."],
    ["The bakery near us does the best cinnamon buns.", "B:Save me one next time!"],
    [
        "I spent the whole evening sorting out old photos.",
        "B:That always takes forever, you keep stopping to look at them.",
    ],
    [
        "My train was cancelled and the replacement bus took two hours.",
        "B:Nightmare. Were you late for work?",
        "Only a bit.",
    ],
    ["I'm thinking of repainting the hallway.", "B:What colour?", "Not sure yet, something light."],
    ["Our street is having a summer party.", "B:That sounds fun, will there be a barbecue?", "Of course."],
    ["I finally cleared out the garage.", "B:Find anything interesting?", "Mostly old paint tins."],
]

REACTIONS: list[str] = [
    "Oh wow, that's big news!",
    "Ha, typical. How did it go?",
    "Nice! Tell me more next time.",
    "Oh no, sorry to hear that.",
    "That sounds lovely.",
    "Really? I had no idea.",
    "Good for you!",
    "Fair enough, I'd do the same.",
    "Wait, since when?",
    "That's brilliant.",
    "Honestly, you deserve it.",
    "Hmm, I'm not sure I could do that.",
    "Ah, that makes sense.",
    "Haha, of course.",
]

GREETINGS = [
    "Hey {B}! How's it going?",
    "Hi {B}, long time no chat!",
    "Morning {B}!",
    "Hey you, got a minute?",
]
GREETING_REPLIES = [
    "Hi {A}! All good, busy week.",
    "Hey {A}! Not bad at all.",
    "Hello! Always got time for you.",
]
GOODBYES = ["Right, I'd better go. Talk soon!", "Got to run, speak later!", "Anyway, dinner's ready, bye!"]
GOODBYE_REPLIES = ["Bye! Take care.", "Talk soon!", "Enjoy, speak soon."]

# Questions no conversation answers: asked of someone who never mentioned the thing.
NEVER_SAID: list[str] = [
    "What is {X}'s favourite ice cream flavour?",
    "Which university did {X} study at?",
    "What is the name of {X}'s horse?",
    "Which football club does {X}'s grandfather support?",
    "What did {X} get for their fortieth birthday?",
    "Where did {X} go skiing last winter?",
    "What is {X}'s shoe size?",
    "Which musical did {X} see in London?",
    "What is {X}'s middle name?",
    "How many languages does {X}'s mother speak?",
    "What did {X} name their boat?",
    "Which mountain did {X} climb in Peru?",
]
