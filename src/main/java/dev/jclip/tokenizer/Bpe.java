package dev.jclip.tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Byte-pair encoding of one pre-token, on integer symbol ids, with the reference's semantics: the
 * word starts as its UTF-8 bytes (the last one carrying {@code </w>}); repeatedly the adjacent pair
 * of lowest merge rank is found and every occurrence of it is merged, left to right without
 * overlap, until no adjacent pair has a rank.
 *
 * <p>Two implementations: a direct one ({@link #mergeSimple}, quadratic in the word length, fastest
 * for real words) and one with a priority queue ({@link #mergeHeap}, O(n log n), for long runs of
 * letters such as a 1 MB string without spaces). Both apply whole rounds of one rank at a time, so
 * they agree with the reference even for merge tables that are not in learned order; the tests
 * check them against each other.
 *
 * <p>Results are memoized in a bounded, thread-safe cache keyed by the pre-token text.
 */
final class Bpe {
  /** Longer words use {@link #mergeHeap}. */
  static final int SIMPLE_LIMIT = 64;
  /** Longer words are not cached: they are rare and would pin a lot of memory. */
  static final int CACHE_WORD_LIMIT = 128;

  private final int[] byteIds = new int[256];
  private final int[] byteEowIds = new int[256];
  private final PairTable pairs;
  private final int cacheCapacity;
  /** Two generations: lookups see both, inserts go to the young one, which retires when full. */
  private final AtomicReference<Generations> cache;

  private record Generations(ConcurrentHashMap<String, int[]> young, ConcurrentHashMap<String, int[]> old) {}

  Bpe(Vocabulary vocab, int cacheCapacity) {
    for (int b = 0; b < 256; b++) {
      String c = String.valueOf(ByteEncoder.encode(b));
      byteIds[b] = vocab.id(c);
      byteEowIds[b] = vocab.id(c + Vocabulary.END_OF_WORD);
    }
    var merges = vocab.merges();
    pairs = new PairTable(merges.size());
    for (int r = 0; r < merges.size(); r++) {
      List<String> m = merges.get(r);
      // dict(zip(merges, range(...))): a repeated merge keeps its last rank.
      pairs.put(vocab.id(m.get(0)), vocab.id(m.get(1)), r, vocab.id(m.get(0) + m.get(1)));
    }
    this.cacheCapacity = Math.max(0, cacheCapacity);
    this.cache = new AtomicReference<>(new Generations(new ConcurrentHashMap<>(), new ConcurrentHashMap<>()));
  }

  /** The ids of one pre-token given as its UTF-8 bytes; {@code key} is its text, for the cache. */
  int[] encode(String key, byte[] utf8, int length) {
    boolean cacheable = cacheCapacity > 0 && key.length() <= CACHE_WORD_LIMIT;
    if (cacheable) {
      Generations g = cache.get();
      int[] hit = g.young.get(key);
      if (hit == null) {
        hit = g.old.get(key);
        if (hit != null) put(key, hit);
      }
      if (hit != null) return hit;
    }
    int[] word = new int[length];
    for (int i = 0; i < length - 1; i++) word[i] = byteIds[utf8[i] & 0xFF];
    word[length - 1] = byteEowIds[utf8[length - 1] & 0xFF];
    int[] ids = length <= SIMPLE_LIMIT ? mergeSimple(word) : mergeHeap(word);
    if (cacheable) put(key, ids);
    return ids;
  }

  private void put(String key, int[] ids) {
    Generations g = cache.get();
    g.young.put(key, ids);
    if (g.young.size() > cacheCapacity / 2) {
      // Retire the old generation; a lost race only drops some cached entries.
      cache.compareAndSet(g, new Generations(new ConcurrentHashMap<>(), g.young));
    }
  }

  /** The direct algorithm: one scan per round for the lowest-ranked pair, one to merge it. */
  int[] mergeSimple(int[] input) {
    int[] w = input.clone();
    int n = w.length;
    while (n > 1) {
      int bestRank = Integer.MAX_VALUE;
      int first = 0;
      int second = 0;
      int merged = 0;
      for (int i = 0; i + 1 < n; i++) {
        long v = pairs.get(w[i], w[i + 1]);
        if (v >= 0 && (int) (v >>> 32) < bestRank) {
          bestRank = (int) (v >>> 32);
          first = w[i];
          second = w[i + 1];
          merged = (int) v;
        }
      }
      if (bestRank == Integer.MAX_VALUE) break;
      int out = 0;
      for (int i = 0; i < n; ) {
        if (i + 1 < n && w[i] == first && w[i + 1] == second) {
          w[out++] = merged;
          i += 2;
        } else {
          w[out++] = w[i++];
        }
      }
      n = out;
    }
    return n == w.length ? w : Arrays.copyOf(w, n);
  }

  /**
   * The same merges with a doubly linked list and a queue of (rank, position): each round takes
   * every queued pair of the lowest rank, in position order, and merges those still present.
   */
  int[] mergeHeap(int[] input) {
    int n = input.length;
    int[] sym = input.clone();
    int[] next = new int[n];
    int[] prev = new int[n];
    boolean[] dead = new boolean[n];
    for (int i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    LongHeap queue = new LongHeap(n);
    for (int i = 0; i + 1 < n; i++) offer(queue, sym, i, i + 1);
    long[] round = new long[16];
    while (!queue.isEmpty()) {
      long head = queue.poll();
      int rank = (int) (head >>> 32);
      int count = 0;
      round[count++] = head;
      while (!queue.isEmpty() && (int) (queue.peek() >>> 32) == rank) {
        if (count == round.length) round = Arrays.copyOf(round, count * 2);
        round[count++] = queue.poll();
      }
      for (int k = 0; k < count; k++) {
        int i = (int) round[k];
        if (dead[i] || next[i] < 0) continue;
        int j = next[i];
        long v = pairs.get(sym[i], sym[j]);
        if (v < 0 || (int) (v >>> 32) != rank) continue;
        sym[i] = (int) v;
        dead[j] = true;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0) offer(queue, sym, prev[i], i);
        if (next[i] >= 0) offer(queue, sym, i, next[i]);
      }
    }
    int count = 0;
    for (int i = 0; i >= 0; i = next[i]) count++;
    int[] out = new int[count];
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) out[k++] = sym[i];
    return out;
  }

  private void offer(LongHeap queue, int[] sym, int i, int j) {
    long v = pairs.get(sym[i], sym[j]);
    if (v >= 0) queue.add(((v >>> 32) << 32) | i);
  }

  /** A binary min-heap of longs (rank << 32 | position), without boxing. */
  private static final class LongHeap {
    private long[] a;
    private int size;

    LongHeap(int capacity) {
      a = new long[Math.max(16, capacity)];
    }

    boolean isEmpty() {
      return size == 0;
    }

    long peek() {
      return a[0];
    }

    void add(long v) {
      if (size == a.length) a = Arrays.copyOf(a, size * 2);
      int i = size++;
      while (i > 0) {
        int parent = (i - 1) >>> 1;
        if (a[parent] <= v) break;
        a[i] = a[parent];
        i = parent;
      }
      a[i] = v;
    }

    long poll() {
      long top = a[0];
      long last = a[--size];
      int i = 0;
      while (true) {
        int child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && a[child + 1] < a[child]) child++;
        if (a[child] >= last) break;
        a[i] = a[child];
        i = child;
      }
      if (size > 0) a[i] = last;
      return top;
    }
  }

  /** Open-addressing map from a pair of ids to (rank << 32 | merged id). */
  private static final class PairTable {
    private final long[] keys;
    private final long[] values;
    private final int mask;

    PairTable(int entries) {
      int cap = Integer.highestOneBit(Math.max(16, entries * 3)) << 1;
      keys = new long[cap];
      values = new long[cap];
      mask = cap - 1;
      Arrays.fill(keys, -1L);
    }

    private static long key(int a, int b) {
      return ((long) a << 32) | (b & 0xFFFFFFFFL);
    }

    private static int hash(long k) {
      long h = k * 0x9E3779B97F4A7C15L;
      return (int) (h ^ (h >>> 29));
    }

    void put(int a, int b, int rank, int merged) {
      long k = key(a, b);
      int i = hash(k) & mask;
      while (keys[i] != -1L && keys[i] != k) i = (i + 1) & mask;
      keys[i] = k;
      values[i] = ((long) rank << 32) | (merged & 0xFFFFFFFFL);
    }

    /** (rank << 32 | merged id), or -1 when the pair has no merge. */
    long get(int a, int b) {
      long k = key(a, b);
      int i = hash(k) & mask;
      while (true) {
        long stored = keys[i];
        if (stored == k) return values[i];
        if (stored == -1L) return -1L;
        i = (i + 1) & mask;
      }
    }
  }
}
