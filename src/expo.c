/*
 * expo.c - merging metrics expositions (see expo.h): families and samples
 * in arrays, found by name through two open-addressing tables of indexes.
 */
#include "expo.h"
#include "errors.h"
#include "hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RULE_SUM, RULE_MAX, RULE_MIN };

/* A sample's value: fixed-point (whole and nanos) when it was written as
 * an integer or with at most nine decimals, else a double. */
typedef struct {
    uint64_t whole;
    uint32_t nanos;
    uint8_t decimals; /* written with a fraction: written back with nine digits */
    uint8_t dbl;      /* d holds it */
    double d;
} value_t;

typedef struct {
    char *name, *help; /* help: as written (escaped); NULL when none */
    char type[16];
    int rule;
    int first, last; /* its samples, a list by next */
} family_t;

typedef struct {
    char *key; /* name and labels, as written */
    value_t v;
    int next;
} sample_t;

/* An index by string: slots hold 1 + the position in the array, 0 empty. */
typedef struct {
    int *slots;
    size_t cap; /* a power of two, or 0 */
} index_t;

struct mw_expo {
    family_t *fams;
    int nfams, capfams;
    sample_t *samples;
    int nsamples, capsamples;
    index_t fam_index, sample_index;
    uint64_t seed;
};

int mw_expo_create(mw_expo_t **out) {
    mw_expo_t *e = calloc(1, sizeof *e);
    if (!e)
        return MW_ENOMEM;
    e->seed = mw_hash_seed();
    *out = e;
    return 0;
}

void mw_expo_free(mw_expo_t *e) {
    if (!e)
        return;
    for (int i = 0; i < e->nfams; i++) {
        free(e->fams[i].name);
        free(e->fams[i].help);
    }
    for (int i = 0; i < e->nsamples; i++)
        free(e->samples[i].key);
    free(e->fams);
    free(e->samples);
    free(e->fam_index.slots);
    free(e->sample_index.slots);
    free(e);
}

/* ---- the indexes ----------------------------------------------------------- */

static const char *fam_key(const mw_expo_t *e, int i) {
    return e->fams[i].name;
}

static const char *sample_key(const mw_expo_t *e, int i) {
    return e->samples[i].key;
}

typedef const char *(*key_fn)(const mw_expo_t *e, int i);

/* find returns the position of key in ix (-1: absent) and, in *slot, where
 * it is or would go. */
static int find(const mw_expo_t *e, const index_t *ix, key_fn keyof, const char *key, size_t len,
                size_t *slot) {
    if (!ix->cap)
        return -1;
    size_t mask = ix->cap - 1, h = (size_t)mw_hash(e->seed, key, len) & mask;
    for (;; h = (h + 1) & mask) {
        int at = ix->slots[h];
        if (!at) {
            *slot = h;
            return -1;
        }
        const char *k = keyof(e, at - 1);
        if (strncmp(k, key, len) == 0 && k[len] == '\0') {
            *slot = h;
            return at - 1;
        }
    }
}

/* grow doubles ix when it is half full (n entries), rehashing them. */
static int grow(mw_expo_t *e, index_t *ix, key_fn keyof, int n) {
    if ((size_t)n * 2 < ix->cap)
        return 0;
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    int *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return MW_ENOMEM;
    for (int i = 0; i < n; i++) {
        const char *k = keyof(e, i);
        size_t h = (size_t)mw_hash(e->seed, k, strlen(k)) & (cap - 1);
        while (slots[h])
            h = (h + 1) & (cap - 1);
        slots[h] = i + 1;
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

static char *copy(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* family finds or adds the family name (len bytes), of type (type_len
 * bytes) and rule when it is new; -1 when out of memory. */
static int family(mw_expo_t *e, const char *name, size_t len, const char *type, size_t type_len,
                  int rule) {
    size_t slot;
    int i = find(e, &e->fam_index, fam_key, name, len, &slot);
    if (i >= 0)
        return i;
    if (grow(e, &e->fam_index, fam_key, e->nfams) != 0)
        return -1;
    if (e->nfams == e->capfams) {
        int cap = e->capfams ? e->capfams * 2 : 64;
        family_t *f = realloc(e->fams, (size_t)cap * sizeof *f);
        if (!f)
            return -1;
        e->fams = f;
        e->capfams = cap;
    }
    family_t *f = &e->fams[e->nfams];
    memset(f, 0, sizeof *f);
    if (!(f->name = copy(name, len)))
        return -1;
    if (type_len >= sizeof f->type)
        type_len = sizeof f->type - 1;
    memcpy(f->type, type, type_len);
    f->rule = rule;
    f->first = f->last = -1;
    find(e, &e->fam_index, fam_key, name, len, &slot); /* the table may have grown */
    e->fam_index.slots[slot] = ++e->nfams;
    return e->nfams - 1;
}

/* ---- values ---------------------------------------------------------------- */

static void parse_value(const char *s, size_t len, value_t *v) {
    memset(v, 0, sizeof *v);
    size_t i = 0;
    uint64_t whole = 0;
    int ok = len > 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (whole > (UINT64_MAX - digit) / 10)
            ok = 0; /* past 64 bits: a double */
        whole = whole * 10 + digit;
    }
    ok = ok && i > 0;
    uint32_t nanos = 0;
    if (ok && i < len && s[i] == '.') {
        size_t digits = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 9)
                nanos = nanos * 10 + (uint32_t)(s[i] - '0');
        ok = digits > 0 && digits <= 9;
        for (; digits < 9; digits++)
            nanos *= 10;
        v->decimals = 1;
    }
    if (ok && i == len) {
        v->whole = whole;
        v->nanos = nanos;
        return;
    }
    char buf[64];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    v->dbl = 1;
    v->d = strtod(buf, NULL); /* "NaN", "+Inf" and exponents too */
}

static double as_double(const value_t *v) {
    return v->dbl ? v->d : (double)v->whole + v->nanos / 1e9;
}

/* less says whether a < b. */
static int less(const value_t *a, const value_t *b) {
    if (a->dbl || b->dbl)
        return as_double(a) < as_double(b);
    return a->whole < b->whole || (a->whole == b->whole && a->nanos < b->nanos);
}

static void merge_value(value_t *into, const value_t *v, int rule) {
    if (rule == RULE_MAX || rule == RULE_MIN) {
        if (rule == RULE_MAX ? less(into, v) : less(v, into))
            *into = *v;
        return;
    }
    if (into->dbl || v->dbl) {
        into->d = as_double(into) + as_double(v);
        into->dbl = 1;
        return;
    }
    into->whole += v->whole;
    into->nanos += v->nanos;
    if (into->nanos >= 1000000000u) {
        into->nanos -= 1000000000u;
        into->whole++;
    }
    into->decimals |= v->decimals;
}

static void write_value(FILE *out, const value_t *v) {
    if (v->dbl) {
        if (isnan(v->d))
            fputs("NaN", out);
        else if (isinf(v->d))
            fputs(v->d > 0 ? "+Inf" : "-Inf", out);
        else
            fprintf(out, "%.17g", v->d);
    } else if (v->decimals) {
        fprintf(out, "%llu.%09u", (unsigned long long)v->whole, (unsigned)v->nanos);
    } else {
        fprintf(out, "%llu", (unsigned long long)v->whole);
    }
}

/* ---- parsing ----------------------------------------------------------------- */

/* sample merges one sample line (key, then the value after the last
 * space) into family fam. */
static int sample(mw_expo_t *e, int fam, const char *line, size_t len) {
    const char *sp = NULL;
    for (size_t i = len; i > 0; i--)
        if (line[i - 1] == ' ') {
            sp = line + i - 1;
            break;
        }
    if (!sp || sp == line)
        return 0;
    size_t klen = (size_t)(sp - line);
    value_t v;
    parse_value(sp + 1, len - klen - 1, &v);
    size_t slot;
    int i = find(e, &e->sample_index, sample_key, line, klen, &slot);
    if (i >= 0) {
        merge_value(&e->samples[i].v, &v, e->fams[fam].rule);
        return 0;
    }
    if (grow(e, &e->sample_index, sample_key, e->nsamples) != 0)
        return MW_ENOMEM;
    if (e->nsamples == e->capsamples) {
        int cap = e->capsamples ? e->capsamples * 2 : 256;
        sample_t *s = realloc(e->samples, (size_t)cap * sizeof *s);
        if (!s)
            return MW_ENOMEM;
        e->samples = s;
        e->capsamples = cap;
    }
    sample_t *s = &e->samples[e->nsamples];
    if (!(s->key = copy(line, klen)))
        return MW_ENOMEM;
    s->v = v;
    s->next = -1;
    find(e, &e->sample_index, sample_key, line, klen, &slot);
    e->sample_index.slots[slot] = e->nsamples + 1;
    family_t *f = &e->fams[fam];
    if (f->last >= 0)
        e->samples[f->last].next = e->nsamples;
    else
        f->first = e->nsamples;
    f->last = e->nsamples++;
    return 0;
}

/* word returns the length of the word at s (up to a space or end). */
static size_t word(const char *s, const char *end) {
    const char *p = s;
    while (p < end && *p != ' ')
        p++;
    return (size_t)(p - s);
}

/* belongs says whether the sample named k (len bytes) is of family f: its
 * name, or a histogram's or summary's with a suffix of theirs. */
static int belongs(const family_t *f, const char *k, size_t len) {
    size_t n = strlen(f->name);
    if (len < n || strncmp(k, f->name, n) != 0)
        return 0;
    if (len == n)
        return 1;
    if (strcmp(f->type, "histogram") != 0 && strcmp(f->type, "summary") != 0)
        return 0;
    k += n;
    len -= n;
    return (len == 7 && !strncmp(k, "_bucket", 7)) || (len == 4 && !strncmp(k, "_sum", 4)) ||
           (len == 6 && !strncmp(k, "_count", 6));
}

static int is_counted(const char *type, size_t len) {
    return (len == 7 && !strncmp(type, "counter", 7)) ||
           (len == 9 && !strncmp(type, "histogram", 9)) ||
           (len == 7 && !strncmp(type, "summary", 7));
}

int mw_expo_add(mw_expo_t *e, const char *text, size_t len, int flags) {
    const char *p = text, *end = text + len;
    const char *help = NULL, *help_name = NULL; /* the last HELP line's */
    size_t help_len = 0, help_name_len = 0;
    int cur = -1, skip = 0; /* the family of the samples that follow; or skip them */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        if (n > 7 && !strncmp(p, "# HELP ", 7)) {
            help_name = p + 7;
            help_name_len = word(help_name, eol);
            help = help_name + help_name_len + (help_name + help_name_len < eol);
            help_len = (size_t)(eol - help);
        } else if (n > 7 && !strncmp(p, "# TYPE ", 7)) {
            const char *name = p + 7, *type = name + word(name, eol);
            size_t name_len = (size_t)(type - name);
            type += type < eol;
            size_t type_len = word(type, eol);
            const char *r = type + type_len + (type + type_len < eol);
            int rule = !strncmp(r, "max", 3) && r + 3 == eol   ? RULE_MAX
                       : !strncmp(r, "min", 3) && r + 3 == eol ? RULE_MIN
                                                               : RULE_SUM;
            skip = (flags & MW_EXPO_COUNTERS_ONLY) && !is_counted(type, type_len);
            cur = -1;
            if (!skip) {
                if ((cur = family(e, name, name_len, type, type_len, rule)) < 0)
                    return MW_ENOMEM;
                family_t *f = &e->fams[cur];
                if (!f->help && help && help_name_len == name_len &&
                    !strncmp(help_name, name, name_len) && !(f->help = copy(help, help_len)))
                    return MW_ENOMEM;
            }
        } else if (n > 0 && *p != '#' && !skip) {
            /* a sample: of the family just declared, else of its own name */
            const char *k = p;
            size_t name_len = 0;
            while (name_len < n && k[name_len] != '{' && k[name_len] != ' ')
                name_len++;
            int fam = cur;
            if (fam < 0 || !belongs(&e->fams[fam], k, name_len)) {
                size_t slot;
                fam = find(e, &e->fam_index, fam_key, k, name_len, &slot);
                if (fam < 0 && !(flags & MW_EXPO_COUNTERS_ONLY) &&
                    (fam = family(e, k, name_len, "untyped", 7, RULE_SUM)) < 0)
                    return MW_ENOMEM;
            }
            if (fam >= 0 && sample(e, fam, p, n) != 0)
                return MW_ENOMEM;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------ */

void mw_expo_write(const mw_expo_t *e, FILE *out, int internal) {
    static const char *const rules[] = {"", " max", " min"};
    for (int i = 0; i < e->nfams; i++) {
        const family_t *f = &e->fams[i];
        if (f->help)
            fprintf(out, "# HELP %s %s\n", f->name, f->help);
        fprintf(out, "# TYPE %s %s%s\n", f->name, f->type, internal ? rules[f->rule] : "");
        for (int s = f->first; s >= 0; s = e->samples[s].next) {
            fputs(e->samples[s].key, out);
            fputc(' ', out);
            write_value(out, &e->samples[s].v);
            fputc('\n', out);
        }
    }
}

int mw_expo_value(const mw_expo_t *e, const char *series, uint64_t *v) {
    size_t slot;
    int i = find(e, &e->sample_index, sample_key, series, strlen(series), &slot);
    if (i < 0)
        return MW_ENOTFOUND;
    const value_t *x = &e->samples[i].v;
    *v = x->dbl ? (x->d > 0 ? (uint64_t)x->d : 0) : x->whole;
    return 0;
}
