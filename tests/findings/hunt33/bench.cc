// Patterns where the F70 heuristic may misfire.
#include <string>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <chrono>
static long rss_kb(){ long a,b; FILE*f=fopen("/proc/self/statm","r"); if(fscanf(f,"%ld %ld",&a,&b)!=2) b=0; fclose(f); return b*4; }
static void touch(char* p, size_t n, int v){ for(size_t i=0;i<n;i+=4096) p[i]=(char)v; }
static const size_t MB = size_t(1)<<20;
int main(int argc,char**argv){
  std::string mode = argv[1]; long n = argc>2? atol(argv[2]):10; long arg = argc>3? atol(argv[3]):110;
  unsigned long sum=0;
  auto t0 = std::chrono::steady_clock::now();
  if (mode=="str") { // n rounds of string growth to arg MB
    char chunk[8192]; memset(chunk,'x',sizeof chunk);
    for (long r=0;r<n;r++){ std::string s; while(s.size() < (size_t)arg*MB) s.append(chunk,sizeof chunk); sum+=s[s.size()/2]; }
  } else if (mode=="vec") { // n rounds of vector<long> push_back growth to arg MB
    for (long r=0;r<n;r++){ std::vector<long> v; while(v.size()*8 < (size_t)arg*MB) v.push_back(v.size()); sum+=v[v.size()/3]; }
  } else if (mode=="alt") { // one live buffer at a time: 20 MB, 40 MB in turn
    for (long i=0;i<n;i++){ size_t s = (i&1)? 40*MB:20*MB; char*p=(char*)malloc(s); memset(p,i,s); sum+=p[s/2]; free(p);}
  } else if (mode=="pingpong") { // next buffer allocated before the old freed, 20 <-> 40 MB
    size_t s=20*MB; char* cur=(char*)malloc(s); memset(cur,1,s);
    for (long i=0;i<n;i++){ size_t s2 = s==20*MB? 40*MB:20*MB; char* nx=(char*)malloc(s2); memcpy(nx,cur,s2<s?s2:s); touch(nx,s2,i); free(cur); cur=nx; s=s2; sum+=cur[s/2]; }
    free(cur);
  } else if (mode=="scratch") { // fixed 20 MB scratch + output of varied size 32..arg MB
    std::mt19937 g(42);
    for (long i=0;i<n;i++){ char*a=(char*)malloc(20*MB); touch(a,20*MB,i);
      size_t bs = (32 + g()% (arg-32))*MB; char*b=(char*)malloc(bs); touch(b,bs,i); memcpy(b,a,20*MB); free(a); sum+=b[bs/2]; free(b);}
  } else if (mode=="pipeline") { // read input (20MB), decode into 2.5x output, free input, process output, free
    std::mt19937 g(7);
    for (long i=0;i<n;i++){ size_t in = (18 + g()%6)*MB; char*a=(char*)malloc(in); touch(a,in,i);
      size_t out = in*5/2; char*b=(char*)malloc(out); touch(b,out,i); free(a); sum+=b[out/2]; free(b);}
  } else if (mode=="realloc") { // n rounds of realloc doubling growth to arg MB
    for (long r=0;r<n;r++){ char*p=nullptr; size_t cap=0, len=0; while(len < (size_t)arg*MB){ if(len+65536>cap){cap = cap? cap*2:65536; p=(char*)realloc(p,cap);} memset(p+len,'y',65536); len+=65536;} sum+=p[len/2]; free(p);}
  } else if (mode=="churn") { // random churn of 0.25..40 MB blocks, 16 live
    std::mt19937 g(1); std::vector<char*> v(16,nullptr); std::vector<size_t> sz(16,0);
    for (long i=0;i<n;i++){ int k=g()%16; free(v[k]); size_t s = 256*1024 + (size_t)(g()% (40*MB)); v[k]=(char*)malloc(s); touch(v[k],s,i); sz[k]=s; }
    for (auto p: v) free(p);
  } else if (mode=="growlive") { // k live buffers each grown by new+copy+delete to arg MB, in turn
    int k=4; std::vector<std::string> s(k); char chunk[65536]; memset(chunk,'z',sizeof chunk);
    for (long r=0;r<n;r++){ for(auto&x:s) std::string().swap(x); bool more=true; while(more){ more=false; for(auto&x:s) if(x.size()<(size_t)arg*MB){x.append(chunk,sizeof chunk); more=true;} } for(auto&x:s) sum+=x[x.size()/2]; }
  }
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  fprintf(stderr,"%s %.3f s rss_end %ld KB sum %lu\n", mode.c_str(), sec, rss_kb(), sum);
}
