/*
 * local.c - the offline, deterministic provider (AI_PROVIDER=local).
 *
 * Text is split into sentences (a run of . ! ? followed by white space or
 * the end, unless the '.' ends a known abbreviation or a single letter; a
 * blank line also ends one) and words (letters, digits and inner
 * apostrophes; any non-ASCII code point outside the punctuation blocks
 * counts as a letter, ASCII is lower-cased). "Content words" are words that
 * are not stop words, not all digits, and at least two bytes long.
 *
 * summarise: each sentence scores the mean text-wide frequency of its
 * content words; the best sentences (ties: the earlier) are kept in their
 * original order, at most 3 of them and at most 20% of the text's
 * characters - except that the best sentence is always kept (cut at a word
 * boundary, with an ellipsis, past max(20%, 300) characters). A further
 * sentence must score at least half the best one's.
 *
 * analyse: word and sentence counts, reading time at 200 words per minute
 * (rounded up), Flesch reading ease (syllables: vowel groups, minus a silent
 * final 'e', at least one per word), the 10 most frequent content words of
 * three or more bytes (ties alphabetical), and a lexicon sentiment: +1 per
 * positive word, -1 per negative one, flipped within three words after a
 * negation; the sum s is normalised as s / sqrt(s^2 + 15) into (-1, 1);
 * label positive at >= 0.05, negative at <= -0.05, else neutral.
 *
 * Everything lives on the attempt's arena; the tables are read-only, so any
 * number of threads may call in at once.
 */
#include "core/nx.h"
#include "jobs/providers/provider.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUMMARY_SENTENCES 3
#define SUMMARY_SHARE 0.20
#define SUMMARY_MIN_CUT 300
#define TOP_KEYWORDS 10
#define NEGATION_REACH 3
#define OUT_MAX (1024 * 1024)

/* Sorted (strcmp order) for bsearch; tests/unit/jobs checks the behaviour. */
static const char *const stop_words[] = {
    "a", "about", "above", "after", "again", "against", "all", "almost", "also", "am",
    "among", "an", "and", "any", "are", "aren't", "around", "as", "at", "be", "because",
    "been", "before", "being", "below", "between", "both", "but", "by", "can", "can't",
    "cannot", "could", "couldn't", "did", "didn't", "do", "does", "doesn't", "doing",
    "don't", "down", "during", "each", "either", "else", "even", "ever", "every", "few",
    "for", "from", "further", "get", "gets", "got", "had", "hadn't", "has", "hasn't",
    "have", "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here", "here's",
    "hers", "herself", "him", "himself", "his", "how", "how's", "however", "i", "i'd",
    "i'll", "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its",
    "itself", "just", "let's", "like", "may", "me", "might", "more", "most", "much",
    "must", "mustn't", "my", "myself", "neither", "no", "nor", "not", "now", "of",
    "off", "often", "on", "once", "one", "only", "or", "other", "others", "ought",
    "our", "ours", "ourselves", "out", "over", "own", "per", "quite", "rather",
    "really", "same", "shall", "shan't", "she", "she'd", "she'll", "she's", "should",
    "shouldn't", "since", "so", "some", "such", "than", "that", "that's", "the",
    "their", "theirs", "them", "themselves", "then", "there", "there's", "these",
    "they", "they'd", "they'll", "they're", "they've", "this", "those", "though",
    "through", "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "via",
    "was", "wasn't", "we", "we'd", "we'll", "we're", "we've", "were", "weren't", "what",
    "what's", "when", "when's", "where", "where's", "whether", "which", "while", "who",
    "who's", "whom", "whose", "why", "why's", "will", "with", "within", "without",
    "won't", "would", "wouldn't", "yet", "you", "you'd", "you'll", "you're", "you've",
    "your", "yours", "yourself", "yourselves",
};

static const char *const positive_words[] = {
    "amazing", "awesome", "beautiful", "beneficial", "benefit", "benefits", "best",
    "better", "brilliant", "calm", "clear", "comfortable", "delighted", "easy",
    "effective", "efficient", "elegant", "enjoy", "enjoyed", "enjoys", "excellent",
    "excited", "exciting", "fantastic", "fast", "favorable", "favourable", "friendly",
    "fun", "gain", "gains", "glad", "good", "great", "growth", "happy", "helpful",
    "hope", "hopeful", "impressive", "improve", "improved", "improvement", "improves",
    "joy", "love", "loved", "lovely", "loves", "nice", "optimistic", "outstanding",
    "perfect", "pleased", "positive", "praise", "praised", "recommend", "recommended",
    "reliable", "remarkable", "robust", "safe", "satisfied", "smooth", "strong",
    "succeed", "succeeded", "success", "successful", "superb", "thrive", "thriving",
    "valuable", "win", "wins", "won", "wonderful",
};

static const char *const negative_words[] = {
    "angry", "annoyed", "awful", "bad", "boring", "broken", "bug", "bugs", "complaint",
    "complaints", "confused", "confusing", "crash", "crashed", "crashes", "crisis",
    "damage", "damaged", "dangerous", "decline", "declined", "delay", "delayed",
    "delays", "difficult", "dirty", "disappointed", "disappointing", "disappointment",
    "dislike", "disliked", "error", "errors", "expensive", "fail", "failed", "fails",
    "failure", "failures", "fear", "frustrated", "frustrating", "hate", "hated",
    "hates", "horrible", "lose", "loss", "losses", "lost", "negative", "noisy", "pain",
    "painful", "pessimistic", "poor", "problem", "problems", "risk", "risky", "rude",
    "sad", "slow", "terrible", "threat", "toxic", "ugly", "unhappy", "unreliable",
    "upset", "useless", "waste", "wasted", "weak", "worried", "worry", "worse", "worst",
};

static const char *const negations[] = {
    "cannot", "never", "no", "nobody", "none", "nor", "not", "nothing", "without",
};

static const char *const abbreviations[] = {
    "dr", "e.g", "etc", "i.e", "inc", "jr", "ltd", "mr", "mrs", "ms", "prof", "sr", "st",
    "vs",
};

/* ---- scanning ------------------------------------------------------------ */

struct token {
    const char *term; /* lower-cased, NUL-terminated, on the arena */
    size_t len;
    int sentence;
    bool content;
};

struct sentence {
    size_t start, end; /* byte span in the text, trimmed */
    int ntokens;
    double score;
};

struct doc {
    nx_arena_t *a;
    const char *text;
    size_t len;
    struct token *tok;
    int ntok, captok;
    struct sentence *sen;
    int nsen, capsen;
};

static int cmp_str(const void *k, const void *e)
{
    return strcmp((const char *)k, *(const char *const *)e);
}

static bool in_list(const char *w, const char *const *list, size_t n)
{
    return bsearch(w, list, n, sizeof(*list), cmp_str) != NULL;
}

#define IN(w, list) in_list((w), (list), NX_ARRAY_LEN(list))

static size_t seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 1;
}

/* Bytes of the code point at p, with *word set when it belongs in words and
 * *apos when it is an apostrophe (which joins words only between letters). */
static size_t classify(const char *t, size_t i, size_t len, bool *word, bool *apos)
{
    const unsigned char *p = (const unsigned char *)t + i;
    size_t n = seq_len(p[0]);
    if (i + n > len)
        n = len - i;
    *apos = false;
    if (n == 1) {
        unsigned char c = p[0];
        *word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        *apos = c == '\'';
        return 1;
    }
    *word = true;
    if (n >= 2 && p[0] == 0xC2) /* U+0080..U+00BF: nbsp, guillemets, signs */
        *word = false;
    if (n == 3 && p[0] == 0xE2 && (p[1] == 0x80 || p[1] == 0x81)) { /* U+2000..U+207F */
        *word = false;
        *apos = p[1] == 0x80 && p[2] == 0x99; /* right single quotation mark */
    }
    if (n == 3 && p[0] == 0xE3 && p[1] == 0x80) /* CJK punctuation */
        *word = false;
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool all_digits(const char *s)
{
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int push_token(struct doc *d, size_t from, size_t to, int sentence)
{
    if (d->ntok == d->captok) {
        int cap = d->captok ? d->captok * 2 : 256;
        struct token *t = nx_arena_alloc(d->a, (size_t)cap * sizeof(*t));
        if (!t)
            return NX_ENOMEM;
        if (d->ntok)
            memcpy(t, d->tok, (size_t)d->ntok * sizeof(*t));
        d->tok = t;
        d->captok = cap;
    }
    char *w = nx_arena_alloc(d->a, to - from + 1);
    if (!w)
        return NX_ENOMEM;
    size_t n = 0;
    for (size_t i = from; i < to;) {
        unsigned char c = (unsigned char)d->text[i];
        if (c == 0xE2 && i + 2 < to + 1 && (unsigned char)d->text[i + 1] == 0x80 &&
            (unsigned char)d->text[i + 2] == 0x99) {
            w[n++] = '\'';
            i += 3;
            continue;
        }
        w[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        i++;
    }
    w[n] = '\0';
    struct token *t = &d->tok[d->ntok++];
    t->term = w;
    t->len = n;
    t->sentence = sentence;
    t->content = n >= 2 && !all_digits(w) && !IN(w, stop_words);
    return NX_OK;
}

/* Splits [from, to) into words tagged with sentence. */
static int tokenize(struct doc *d, size_t from, size_t to, int sentence)
{
    size_t i = from;
    while (i < to) {
        bool word, apos;
        size_t n = classify(d->text, i, to, &word, &apos);
        if (!word) {
            i += n;
            continue;
        }
        size_t start = i, end = i + n;
        i = end;
        while (i < to) {
            n = classify(d->text, i, to, &word, &apos);
            if (word) {
                i += n;
                end = i;
                continue;
            }
            bool w2 = false, a2;
            if (apos && i + n < to)
                classify(d->text, i + n, to, &w2, &a2);
            if (!w2)
                break;
            i += n; /* inner apostrophe: keep going */
        }
        int rc = push_token(d, start, end, sentence);
        if (rc)
            return rc;
    }
    return NX_OK;
}

static int push_sentence(struct doc *d, size_t start, size_t end)
{
    while (start < end && is_space(d->text[start]))
        start++;
    while (end > start && is_space(d->text[end - 1]))
        end--;
    if (start == end)
        return NX_OK;
    int before = d->ntok;
    int rc = tokenize(d, start, end, d->nsen);
    if (rc || d->ntok == before)
        return rc; /* nothing but punctuation: not a sentence */
    if (d->nsen == d->capsen) {
        int cap = d->capsen ? d->capsen * 2 : 64;
        struct sentence *s = nx_arena_alloc(d->a, (size_t)cap * sizeof(*s));
        if (!s)
            return NX_ENOMEM;
        if (d->nsen)
            memcpy(s, d->sen, (size_t)d->nsen * sizeof(*s));
        d->sen = s;
        d->capsen = cap;
    }
    d->sen[d->nsen++] = (struct sentence){start, end, d->ntok - before, 0};
    return NX_OK;
}

/* True when the '.' at i ends an abbreviation or an initial ("J."). */
static bool abbreviation_at(const char *t, size_t start, size_t i)
{
    size_t j = i;
    while (j > start && (isalpha((unsigned char)t[j - 1]) || t[j - 1] == '.'))
        j--;
    size_t n = i - j;
    if (n == 0 || n > 6)
        return false;
    if (n == 1) /* an initial: "J. Smith" */
        return t[j] >= 'A' && t[j] <= 'Z';
    char w[8];
    for (size_t k = 0; k < n; k++)
        w[k] = (char)(t[j + k] >= 'A' && t[j + k] <= 'Z' ? t[j + k] + 32 : t[j + k]);
    w[n] = '\0';
    return IN(w, abbreviations);
}

static bool closer_at(const char *t, size_t i, size_t len, size_t *n)
{
    unsigned char c = (unsigned char)t[i];
    if (c == '"' || c == '\'' || c == ')' || c == ']') {
        *n = 1;
        return true;
    }
    if (c == 0xE2 && i + 2 < len && (unsigned char)t[i + 1] == 0x80 &&
        ((unsigned char)t[i + 2] == 0x9D || (unsigned char)t[i + 2] == 0x99)) {
        *n = 3;
        return true;
    }
    return false;
}

static int scan(struct doc *d)
{
    const char *t = d->text;
    size_t start = 0, i = 0;
    while (i < d->len) {
        char c = t[i];
        if (c == '\n') { /* a blank line ends a sentence */
            size_t j = i + 1;
            while (j < d->len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r'))
                j++;
            if (j < d->len && t[j] == '\n') {
                int rc = push_sentence(d, start, i);
                if (rc)
                    return rc;
                start = i = j + 1;
                continue;
            }
            i++;
            continue;
        }
        if (c != '.' && c != '!' && c != '?') {
            i++;
            continue;
        }
        size_t j = i, n;
        bool single_dot = c == '.' && (i + 1 >= d->len || t[i + 1] != '.');
        while (j < d->len && (t[j] == '.' || t[j] == '!' || t[j] == '?'))
            j++;
        while (j < d->len && closer_at(t, j, d->len, &n))
            j += n;
        if (j < d->len && !is_space(t[j])) {
            i = j;
            continue;
        }
        if (single_dot && j == i + 1 && abbreviation_at(t, start, i)) {
            i = j;
            continue;
        }
        int rc = push_sentence(d, start, j);
        if (rc)
            return rc;
        start = i = j;
    }
    return push_sentence(d, start, d->len);
}

/* ---- term counts ----------------------------------------------------------- */

struct term {
    const char *term;
    long count;
};

struct counts {
    struct term *slot;
    size_t cap; /* power of two */
    size_t n;
};

static struct term *counts_slot(struct counts *c, const char *w)
{
    size_t i = (size_t)nx_hash_str(w) & (c->cap - 1);
    while (c->slot[i].term && strcmp(c->slot[i].term, w) != 0)
        i = (i + 1) & (c->cap - 1);
    return &c->slot[i];
}

static int count_terms(struct doc *d, struct counts *c)
{
    c->cap = 64;
    while (c->cap < (size_t)d->ntok * 2)
        c->cap *= 2;
    c->n = 0;
    c->slot = nx_arena_calloc(d->a, c->cap * sizeof(*c->slot));
    if (!c->slot)
        return NX_ENOMEM;
    for (int i = 0; i < d->ntok; i++) {
        if (!d->tok[i].content)
            continue;
        struct term *s = counts_slot(c, d->tok[i].term);
        if (!s->term) {
            s->term = d->tok[i].term;
            c->n++;
        }
        s->count++;
    }
    return NX_OK;
}

static long term_count(struct counts *c, const char *w)
{
    struct term *s = counts_slot(c, w);
    return s->term ? s->count : 0;
}

static int load(struct doc *d, nx_arena_t *a, const char *text, size_t len)
{
    memset(d, 0, sizeof(*d));
    d->a = a;
    d->text = text;
    d->len = len;
    return scan(d);
}

/* ---- summarise --------------------------------------------------------------- */

static int by_score(const void *x, const void *y)
{
    const struct sentence *a = *(const struct sentence *const *)x;
    const struct sentence *b = *(const struct sentence *const *)y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

static int by_position(const void *x, const void *y)
{
    const struct sentence *a = *(const struct sentence *const *)x;
    const struct sentence *b = *(const struct sentence *const *)y;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* Appends the sentence with white-space runs collapsed, at most max code
 * points (cut at a word boundary with an ellipsis). */
static int append_sentence(nx_buf_t *b, const char *t, const struct sentence *s, size_t max)
{
    size_t cps = 0, cut_len = 0;
    size_t mark = b->len;
    bool space = false;
    for (size_t i = s->start; i < s->end; i++) {
        unsigned char c = (unsigned char)t[i];
        if (is_space((char)c)) {
            space = true;
            continue;
        }
        if (space) {
            cut_len = b->len;
            if (nx_buf_append(b, " ", 1))
                return NX_ENOMEM;
            cps++;
            space = false;
        }
        if ((c & 0xC0) != 0x80 && ++cps > max) {
            b->len = cut_len > mark ? cut_len : b->len;
            b->data[b->len] = '\0';
            return nx_buf_puts(b, "\xE2\x80\xA6") ? NX_ENOMEM : NX_OK;
        }
        if (nx_buf_append(b, &t[i], 1))
            return NX_ENOMEM;
    }
    return NX_OK;
}

static int summary_text(struct doc *d, struct counts *c, nx_buf_t *out)
{
    if (d->nsen == 0)
        return NX_OK;
    for (int s = 0, k = 0; s < d->nsen; s++) {
        long sum = 0;
        int n = 0;
        for (; k < d->ntok && d->tok[k].sentence == s; k++)
            if (d->tok[k].content) {
                sum += term_count(c, d->tok[k].term);
                n++;
            }
        d->sen[s].score = n ? (double)sum / n : 0.0;
    }
    struct sentence **order = nx_arena_alloc(d->a, (size_t)d->nsen * sizeof(*order));
    struct sentence *pick[MAX_SUMMARY_SENTENCES];
    if (!order)
        return NX_ENOMEM;
    for (int s = 0; s < d->nsen; s++)
        order[s] = &d->sen[s];
    qsort(order, (size_t)d->nsen, sizeof(*order), by_score);

    size_t total = nx_utf8_len(d->text, d->len);
    size_t budget = (size_t)((double)total * SUMMARY_SHARE);
    size_t used = 0;
    int npick = 0;
    for (int s = 0; s < d->nsen && npick < MAX_SUMMARY_SENTENCES; s++) {
        size_t n = nx_utf8_len(d->text + order[s]->start, order[s]->end - order[s]->start);
        if (npick == 0 || (order[s]->score >= 0.5 * pick[0]->score && order[s]->score > 0 &&
                           used + 1 + n <= budget)) {
            pick[npick++] = order[s];
            used += n + (npick > 1);
        }
    }
    qsort(pick, (size_t)npick, sizeof(*pick), by_position);
    size_t cap = budget > SUMMARY_MIN_CUT ? budget : SUMMARY_MIN_CUT;
    for (int s = 0; s < npick; s++) {
        if (s && nx_buf_append(out, " ", 1))
            return NX_ENOMEM;
        if (append_sentence(out, d->text, pick[s], npick == 1 ? cap : (size_t)-1))
            return NX_ENOMEM;
    }
    return NX_OK;
}

int nx_provider_local_summarise(nx_arena_t *a, const char *text, size_t len, char **out,
                                nx_err_t *err)
{
    struct doc d;
    struct counts c;
    nx_buf_t sum, b;
    nx_buf_init(&sum, a, OUT_MAX);
    nx_buf_init(&b, a, OUT_MAX);
    if (load(&d, a, text, len) || count_terms(&d, &c) || summary_text(&d, &c, &sum) ||
        nx_buf_puts(&b, "{\"summary\": ") ||
        nx_buf_json_str(&b, sum.data ? sum.data : "") ||
        nx_buf_puts(&b, ", \"provider\": \"local\", \"model\": \"" NX_LOCAL_MODEL "\"}"))
        return nx_err_set(err, NX_ENOMEM, "out of memory while summarising");
    *out = b.data;
    return NX_OK;
}

/* ---- analyse ----------------------------------------------------------------- */

static long syllables(const char *w, size_t n)
{
    long groups = 0, letters = 0;
    bool prev_vowel = false;
    for (size_t i = 0; i < n; i++) {
        char c = w[i];
        if (c < 'a' || c > 'z') {
            prev_vowel = false;
            continue;
        }
        letters++;
        bool v = strchr("aeiouy", c) != NULL;
        if (v && !prev_vowel)
            groups++;
        prev_vowel = v;
    }
    if (letters == 0)
        return 1;
    /* silent final e: "make", but not "table" or "be" */
    if (n > 2 && w[n - 1] == 'e' && !(w[n - 2] == 'l' && !strchr("aeiouy", w[n - 3])) &&
        !strchr("aeiouy", w[n - 2]) && groups > 1)
        groups--;
    return groups > 0 ? groups : 1;
}

static void stats_of(const struct doc *d, nx_text_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->words = d->ntok;
    st->sentences = d->nsen;
    for (int i = 0; i < d->ntok; i++)
        st->syllables += syllables(d->tok[i].term, d->tok[i].len);
    st->reading_time_seconds = (st->words * 60 + 199) / 200;
    if (st->words > 0 && st->sentences > 0) {
        double f = 206.835 - 1.015 * ((double)st->words / (double)st->sentences) -
                   84.6 * ((double)st->syllables / (double)st->words);
        st->flesch = round(f * 100.0) / 100.0;
    }
}

int nx_provider_local_stats(nx_arena_t *a, const char *text, size_t len, nx_text_stats_t *st)
{
    struct doc d;
    if (load(&d, a, text, len))
        return NX_ENOMEM;
    stats_of(&d, st);
    return NX_OK;
}

static int by_count(const void *x, const void *y)
{
    const struct term *a = x, *b = y;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->term, b->term);
}

static double sentiment(const struct doc *d)
{
    long sum = 0;
    int negated_until = -1, sentence = -1;
    for (int i = 0; i < d->ntok; i++) {
        const struct token *t = &d->tok[i];
        if (t->sentence != sentence) {
            sentence = t->sentence;
            negated_until = -1;
        }
        bool neg = IN(t->term, negations) ||
                   (t->len > 3 && strcmp(t->term + t->len - 3, "n't") == 0);
        if (neg) {
            negated_until = i + NEGATION_REACH;
            continue;
        }
        int v = IN(t->term, positive_words) ? 1 : IN(t->term, negative_words) ? -1 : 0;
        if (v && i <= negated_until)
            v = -v;
        sum += v;
    }
    double s = (double)sum / sqrt((double)sum * (double)sum + 15.0);
    return round(s * 1000.0) / 1000.0;
}

static int render_analysis(nx_buf_t *b, const nx_text_stats_t *st, struct term *top, size_t ntop,
                           double score)
{
    const char *label = score >= 0.05 ? "positive" : score <= -0.05 ? "negative" : "neutral";
    int rc = nx_buf_printf(b,
                           "{\"word_count\": %ld, \"sentence_count\": %ld, "
                           "\"reading_time_seconds\": %ld, \"flesch_reading_ease\": %.2f, "
                           "\"top_keywords\": [",
                           st->words, st->sentences, st->reading_time_seconds, st->flesch);
    for (size_t i = 0; !rc && i < ntop; i++) {
        rc = nx_buf_puts(b, i ? ", {\"term\": " : "{\"term\": ");
        rc = rc ? rc : nx_buf_json_str(b, top[i].term);
        rc = rc ? rc : nx_buf_printf(b, ", \"count\": %ld}", top[i].count);
    }
    return rc ? rc
              : nx_buf_printf(b,
                              "], \"sentiment\": {\"score\": %.3f, \"label\": \"%s\"}, "
                              "\"provider\": \"local\", \"model\": \"" NX_LOCAL_MODEL "\"}",
                              score, label);
}

int nx_provider_local_analyse(nx_arena_t *a, const char *text, size_t len, char **out,
                              nx_err_t *err)
{
    struct doc d;
    struct counts c;
    nx_text_stats_t st;
    nx_buf_t b;
    nx_buf_init(&b, a, OUT_MAX);
    if (load(&d, a, text, len) || count_terms(&d, &c))
        return nx_err_set(err, NX_ENOMEM, "out of memory while analysing");
    stats_of(&d, &st);
    struct term *terms = nx_arena_alloc(a, (c.n ? c.n : 1) * sizeof(*terms));
    if (!terms)
        return nx_err_set(err, NX_ENOMEM, "out of memory while analysing");
    size_t n = 0;
    for (size_t i = 0; i < c.cap; i++)
        if (c.slot[i].term && strlen(c.slot[i].term) >= 3)
            terms[n++] = c.slot[i];
    qsort(terms, n, sizeof(*terms), by_count);
    if (render_analysis(&b, &st, terms, n < TOP_KEYWORDS ? n : TOP_KEYWORDS, sentiment(&d)))
        return nx_err_set(err, NX_ENOMEM, "out of memory while analysing");
    *out = b.data;
    return NX_OK;
}
