package dev.jclip.image;

import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * Objects that are costly to make and used by one caller at a time (a preprocessor's scratch, a
 * TurboJPEG handle with its buffers), kept between uses: a caller borrows one (or a new one is
 * made) and gives it back; at most {@code max} are kept, the rest dropped. The pool belongs to its
 * owner (not to the threads, as a ThreadLocal would), so what it keeps goes with the owner, and
 * {@link #clear()} drops it at once. Thread-safe.
 */
public final class ReusePool<T> {
  private final Supplier<T> make;
  private final int max;
  private final ConcurrentLinkedDeque<T> kept = new ConcurrentLinkedDeque<>();
  private final AtomicInteger count = new AtomicInteger();

  /** A pool of what {@code make} makes, keeping at most {@code max}. */
  public ReusePool(Supplier<T> make, int max) {
    this.make = make;
    this.max = max;
  }

  /** A pool keeping at most one per processor. */
  public ReusePool(Supplier<T> make) {
    this(make, Runtime.getRuntime().availableProcessors());
  }

  /** A kept object, or a new one. */
  public T borrow() {
    T t = kept.pollFirst();
    if (t == null) return make.get();
    count.decrementAndGet();
    return t;
  }

  /** Keeps {@code t} for the next borrower, unless {@code max} are kept already (then it is dropped). */
  public void giveBack(T t) {
    if (count.incrementAndGet() > max) {
      count.decrementAndGet();
      return;
    }
    kept.offerFirst(t);
  }

  /** Drops everything kept. */
  public void clear() {
    for (T t; (t = kept.pollFirst()) != null; ) count.decrementAndGet();
  }

  /** How many are kept. */
  public int size() {
    return count.get();
  }
}
