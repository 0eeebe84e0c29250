/*
 * Differential-test oracle: answers RLIKE / LIKE questions with the real Lucene that
 * Elasticsearch 9.x ships, so the Python engines can be compared with it.
 *
 * Protocol: one JSON object per stdin line, {"op": "rlike"|"like", "pattern": "...", "text": "..."}
 * (flat, string values only, as Python's json.dumps writes them). One answer line each:
 *   M            the pattern compiles and the whole text matches
 *   N            the pattern compiles and the text does not match
 *   T <message>  Lucene gave up determinizing (TooComplexToDeterminizeException)
 *   E <message>  the pattern is rejected (what ES reports as a planning error)
 *
 * Lucene 10 class files need Java 21+, while the machine's javac may be 17, so Lucene is only
 * touched through reflection: this file compiles against the JDK alone and runs on any Java
 * that can load the Lucene jar.
 *
 * What it mirrors (Elasticsearch 9.x, x-pack/plugin/esql-core, package
 * org.elasticsearch.xpack.esql.core.expression.predicate.regex):
 *   RLikePattern:    Operations.determinize(new RegExp(p, ALL | DEPRECATED_COMPLEMENT, 0)
 *                    .toAutomaton(), DEFAULT_DETERMINIZE_WORK_LIMIT)
 *   WildcardPattern: StringUtils.wildcardToJavaPattern(p, '\\') validation in the constructor,
 *                    then WildcardQuery.toAutomaton(new Term(null, p), DEFAULT_...WORK_LIMIT)
 */

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

public final class LuceneOracle {
    private static final String PKG = "org.apache.lucene.util.automaton.";
    private static final int WORK_LIMIT = 10000; // Operations.DEFAULT_DETERMINIZE_WORK_LIMIT

    private final Constructor<?> regExpCtor;
    private final Method toAutomaton;
    private final Method determinize;
    private final Constructor<?> runCtor;
    private final Method run;
    private final Method wildcardToAutomaton;
    private final Constructor<?> termCtor;
    private final int rlikeFlags;

    private LuceneOracle() throws ReflectiveOperationException {
        Class<?> regExp = Class.forName(PKG + "RegExp");
        Class<?> automaton = Class.forName(PKG + "Automaton");
        Class<?> operations = Class.forName(PKG + "Operations");
        Class<?> runAutomaton = Class.forName(PKG + "CharacterRunAutomaton");
        Class<?> term = Class.forName("org.apache.lucene.index.Term");
        Class<?> wildcardQuery = Class.forName("org.apache.lucene.search.WildcardQuery");
        regExpCtor = regExp.getConstructor(String.class, int.class, int.class);
        toAutomaton = regExp.getMethod("toAutomaton");
        determinize = operations.getMethod("determinize", automaton, int.class);
        runCtor = runAutomaton.getConstructor(automaton);
        run = runAutomaton.getMethod("run", String.class);
        termCtor = term.getConstructor(String.class, String.class);
        wildcardToAutomaton = wildcardQuery.getMethod("toAutomaton", term, int.class);
        rlikeFlags = regExp.getField("ALL").getInt(null) | regExp.getField("DEPRECATED_COMPLEMENT").getInt(null);
    }

    private Object rlikeAutomaton(String pattern) throws ReflectiveOperationException {
        Object re = regExpCtor.newInstance(pattern, rlikeFlags, 0);
        return determinize.invoke(null, toAutomaton.invoke(re), WORK_LIMIT);
    }

    private Object likeAutomaton(String pattern) throws ReflectiveOperationException {
        validateWildcard(pattern);
        return wildcardToAutomaton.invoke(null, termCtor.newInstance(null, pattern), WORK_LIMIT);
    }

    /** Same checks as ES StringUtils.wildcardToJavaPattern(pattern, '\\'). */
    private static void validateWildcard(String pattern) {
        boolean escaped = false;
        for (int i = 0; i < pattern.length(); i++) {
            char curr = pattern.charAt(i);
            if (escaped == false && curr == '\\') {
                escaped = true;
                if (i + 1 == pattern.length()) {
                    throw new IllegalArgumentException("escape character is not followed by special wildcard char");
                }
            } else {
                if (escaped && curr != '*' && curr != '?' && curr != '\\') {
                    throw new IllegalArgumentException("escape character is not followed by special wildcard char");
                }
                escaped = false;
            }
        }
    }

    /** Compiled runners (or the error answer) per op and pattern: hypothesis repeats patterns. */
    private final Map<String, Object> compiled = new HashMap<>();

    private Object compile(String op, String pattern) {
        try {
            Object automaton = "like".equals(op) ? likeAutomaton(pattern) : rlikeAutomaton(pattern);
            return runCtor.newInstance(automaton);
        } catch (InvocationTargetException e) {
            return describe(e.getCause());
        } catch (RuntimeException | ReflectiveOperationException | StackOverflowError e) {
            return describe(e);
        }
    }

    private String answer(Map<String, String> q) throws ReflectiveOperationException {
        String key = q.get("op") + "\u0000" + q.get("pattern");
        Object runner = compiled.computeIfAbsent(key, k -> compile(q.get("op"), q.get("pattern")));
        if (runner instanceof String error) {
            return error;
        }
        return (Boolean) run.invoke(runner, q.get("text")) ? "M" : "N";
    }

    private static String describe(Throwable t) {
        String message = (t.getClass().getSimpleName() + ": " + t.getMessage()).replace('\n', ' ').replace('\r', ' ');
        return (t.getClass().getSimpleName().startsWith("TooComplex") ? "T " : "E ") + message;
    }

    /** Parses one flat JSON object whose values are all strings. */
    static Map<String, String> parseObject(String line) {
        Map<String, String> out = new HashMap<>();
        int[] pos = { skipWs(line, 0) };
        expect(line, pos, '{');
        while (true) {
            pos[0] = skipWs(line, pos[0]);
            if (line.charAt(pos[0]) == '}') break;
            String key = parseString(line, pos);
            pos[0] = skipWs(line, pos[0]);
            expect(line, pos, ':');
            pos[0] = skipWs(line, pos[0]);
            out.put(key, parseString(line, pos));
            pos[0] = skipWs(line, pos[0]);
            if (line.charAt(pos[0]) == ',') pos[0]++;
        }
        return out;
    }

    private static int skipWs(String s, int i) {
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        return i;
    }

    private static void expect(String s, int[] pos, char c) {
        if (s.charAt(pos[0]) != c) throw new IllegalStateException("bad JSON at " + pos[0] + ": " + s);
        pos[0]++;
    }

    private static String parseString(String s, int[] pos) {
        expect(s, pos, '"');
        StringBuilder b = new StringBuilder();
        while (true) {
            char c = s.charAt(pos[0]++);
            if (c == '"') return b.toString();
            if (c != '\\') {
                b.append(c);
                continue;
            }
            char e = s.charAt(pos[0]++);
            switch (e) {
                case 'n' -> b.append('\n');
                case 't' -> b.append('\t');
                case 'r' -> b.append('\r');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'u' -> {
                    b.append((char) Integer.parseInt(s.substring(pos[0], pos[0] + 4), 16));
                    pos[0] += 4;
                }
                default -> b.append(e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        LuceneOracle oracle = new LuceneOracle();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        out.println("READY");
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            out.println(oracle.answer(parseObject(line)));
            out.flush();
        }
    }
}
